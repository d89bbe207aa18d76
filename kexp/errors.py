"""The one base class of every error kexp reports to a user.

Each module keeps its own error type (ConfigError, InitializerError, DataError, RunError, ...),
named where the bad input is checked; they all derive from KexpError, so the command line catches
one type and prints the message instead of a traceback. KexpError is a ValueError, as the bad
input it reports is a value.
"""


class KexpError(ValueError):
    """Bad input or a bad run folder; the message names the value and what would be valid."""


class RunError(KexpError):
    """A run folder that does not exist, is outside the runs directory, or cannot be read."""
