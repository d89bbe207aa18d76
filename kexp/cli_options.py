"""Command-line pieces that several sub-commands share, declared once.

cli.py and the experiments' sub-commands build their parsers from these, so `--runs-dir`, the
`run` argument and the help layout read the same everywhere. argparse only: importing this
module imports neither TensorFlow nor any command.
"""

from __future__ import annotations

import argparse

from kexp.config import DEFAULTS


def add_command(subparsers, name: str, help: str, func) -> argparse.ArgumentParser:
    """A sub-command whose help prints every default; `func(args)` runs it and returns the exit
    code. No option may be abbreviated (`--epoch 1` is not `--epochs 1`)."""
    parser = subparsers.add_parser(name, help=help, allow_abbrev=False,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def add_runs_dir(parser: argparse.ArgumentParser, help: str = "folder of the run folders"
                 ) -> None:
    """--runs-dir, defaulting to TrainConfig's runs_dir."""
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir, help=help)


def add_run(parser: argparse.ArgumentParser) -> None:
    """The optional `run` argument, as kexp.storage.runs.resolve_run reads it."""
    parser.add_argument("run", nargs="?", default=None,
                        help="run folder (its path, or its name inside --runs-dir), 'all', or "
                             "nothing for the newest")


def whole_number(text: str) -> int:
    """argparse type for counts: 'abc' fails with a message that says what was expected. Only
    the digits 0-9 (int() would also read '١٢', Arabic-Indic digits, as 12)."""
    try:
        if not text.isascii():
            raise ValueError(text)
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number (digits 0-9)") from None
    return value
