"""The checks that many modules make of a value a user gave, worded once.

A count (epochs, jobs, a seed, a kernel size) is refused the same way wherever it is given, the
command line, a config file or a Python call, so that one message names the value and the
numbers that would do. Each caller names its own error type: the message is the same, the
exception is the one its module documents. No kexp imports: every floor may use this.
"""

from __future__ import annotations


def is_whole(value) -> bool:
    """An int that is not a bool (True is an int to Python, never a count to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_whole(name: str, value, low: int = 0, high: int | None = None, *,
                none: str | None = None, note: str = "", error: type[Exception] = ValueError):
    """`value` if it is a whole number from `low` to `high` (no upper bound: None); else
    `error`: "Invalid value for `name`: value. Expected a whole number >= low...". `none`, where
    None is allowed too, says what it means ("nothing for the default"); `note` explains a
    bound (" (0: off)")."""
    if none is not None and value is None:
        return value
    if is_whole(value) and value >= low and (high is None or value <= high):
        return value
    expected = f"a whole number >= {low}{note}" + (f" (at most {high})" if high is not None
                                                   else "")
    raise error(f"Invalid value for `{name}`: {value!r}. Expected {expected}"
                f"{f', or {none}' if none is not None else ''}.")
