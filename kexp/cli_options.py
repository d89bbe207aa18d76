"""Command-line pieces that several sub-commands share, declared once.

cli.py and the experiments' sub-commands build their parsers from these, so `--runs-dir`, the
`run` argument, the training options and the help layout read the same everywhere. A training
option is generated from its TrainConfig field (kexp.config.option): its spelling, type,
choices, help and default are written there only. argparse only: importing this module imports
neither TensorFlow nor any command.
"""

from __future__ import annotations

import argparse
import dataclasses

from kexp import config
from kexp.config import TrainConfig


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default printed after its help, unless the help says it in words
    ("(default: the architecture's own)" reads better than "(default: None)")."""

    def _get_help_string(self, action):
        if "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers, name: str, help: str, func) -> argparse.ArgumentParser:
    """A sub-command whose help prints every default; `func(args)` runs it and returns the exit
    code. No option may be abbreviated (`--epoch 1` is not `--epochs 1`)."""
    parser = subparsers.add_parser(name, help=help, allow_abbrev=False,
                                   formatter_class=DefaultsHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def add_runs_dir(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """--runs-dir, as TrainConfig's runs_dir describes it; `help` says what a command keeps
    there, where that is more than runs."""
    add_train_options(parser, ("runs_dir",), help={"runs_dir": help} if help else None)


def add_train_options(parser: argparse.ArgumentParser, names=None, defaults: dict | None = None,
                      help: dict | None = None) -> None:
    """One option per TrainConfig field named in `names` (every field but runs_dir when None),
    spelled, typed and explained by the field's metadata; `defaults` and `help` replace the
    field's own for this command (compare's shorter study). The value lands under the field's
    name, so `training_values(args)` collects them."""
    wanted = ([item.name for item in dataclasses.fields(TrainConfig) if item.name != "runs_dir"]
              if names is None else names)
    items = {item.name: item for item in dataclasses.fields(TrainConfig)}
    for name in wanted:
        item, rules = items[name], items[name].metadata
        default = (defaults or {}).get(name, item.default)
        kind = rules["kind"]
        if kind == config.CHOICE:
            extra = {"choices": rules["choices"]}
        elif kind == config.FLAG:
            extra = {"action": argparse.BooleanOptionalAction if default else "store_true"}
        else:  # a value, shown as the option's name in capitals
            extra = {"metavar": make_variable(item),
                     "type": {config.WHOLE: whole_number, config.NUMBER: float,
                              config.NAMES: layer_list}.get(kind, str)}
        parser.add_argument(config.option_flag(item), dest=name, default=default,
                            help=(help or {}).get(name) or rules["help"], **extra)


def training_values(args: argparse.Namespace) -> dict:
    """The TrainConfig settings among parsed arguments, by field name."""
    return {item.name: getattr(args, item.name) for item in dataclasses.fields(TrainConfig)
            if hasattr(args, item.name)}


def add_run(parser: argparse.ArgumentParser) -> None:
    """The optional `run` argument, as kexp.storage.runs.resolve_run reads it."""
    parser.add_argument("run", nargs="?", default=None,
                        help="run folder (its path, or its name inside --runs-dir), 'all', or "
                             "nothing for the newest")


def layer_list(text: str) -> list[str]:
    """--freeze: comma-separated layer names, each once ('' for none)."""
    names = [name.strip() for name in text.split(",")] if text.strip() else []
    if "" in names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"'{text}' has an empty or repeated layer name; expected comma-separated conv layer "
            "names, each once, e.g. conv1,conv2")
    return names


def whole_number(text: str) -> int:
    """argparse type for counts: 'abc' fails with a message that says what was expected. Only
    the digits 0-9 (int() would also read '١٢', Arabic-Indic digits, as 12). The bounds are
    checked where the count is used (kexp.validation.check_whole), so that the command line, a
    config file and a Python call are refused in the same words."""
    try:
        if not text.isascii():
            raise ValueError(text)
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number (digits 0-9)") from None
    return value


def make_variable(item: dataclasses.Field) -> str:
    """A setting's name in capitals, as its option spells it: BATCH_SIZE for --batch-size (the
    option's value in `--help`, and its Make variable)."""
    return config.option_flag(item)[2:].upper().replace("-", "_")


def make_variables() -> str:
    """The Makefile's names for the `train` options, from TrainConfig's fields (the option in
    capitals: BATCH_SIZE for --batch-size), one word each: VARIABLE:value:--option (EPOCHS=3
    passes --epochs 3), VARIABLE:on:--flag (TENSORBOARD=1 passes --tensorboard) and, for a flag
    that is on by default, VARIABLE:off:--no-flag (AUGMENT=0 passes --no-augment)."""
    words = []
    for item in dataclasses.fields(TrainConfig):
        flag, variable = config.option_flag(item), make_variable(item)
        if item.metadata["kind"] != config.FLAG:
            words.append(f"{variable}:value:{flag}")
            continue
        words.append(f"{variable}:on:{flag}")
        if item.default:
            words.append(f"{variable}:off:--no-{flag[2:]}")
    return " ".join(words)


if __name__ == "__main__":  # `make train` asks which variables are options
    print(make_variables())
