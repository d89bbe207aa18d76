"""The `kexp` command line: train, visualize, runs, initializers, and the experiments' commands.

TensorFlow is imported only when a command trains (kexp.training.trainer is imported by that command), so
`kexp --help`, `kexp runs` and `kexp visualize` answer fast. Defaults come from kexp.config;
argparse prints them. Every kexp error derives from kexp.errors.KexpError, caught once in `main`.
"""

from __future__ import annotations

import argparse
import signal
import sys

from kexp import config as config_module
from kexp import shell_commands
from kexp.cli_options import (add_command, add_run, add_runs_dir, add_train_options,
                              training_values)
from kexp.config import TrainConfig
from kexp.digits import data
from kexp.errors import KexpError
from kexp.experiments import animate, explain
from kexp.experiments.compare import command as compare_command
from kexp.experiments.demos import command as demos_command
from kexp.network import initializers
from kexp.storage import runs
from kexp.training import tf_startup

# The experiments' modules: each has add_parser(subparsers) and imports TensorFlow only when its
# command runs.
COMMAND_MODULES = (compare_command, animate, demos_command, explain)


def _add_train_parser(subparsers) -> None:
    parser = add_command(subparsers, "train", "train a model on MNIST and export its conv "
                         "kernels before/after", _train_command)
    add_train_options(parser)  # every TrainConfig setting, as kexp.config describes it
    add_runs_dir(parser)
    parser.add_argument("--resume", metavar="RUN",
                        help="continue an interrupted run from its last completed epoch "
                             "(other settings come from the run)")


def _train_command(args) -> int:
    # Every argument is checked before TensorFlow is imported (seconds): a typo is answered at
    # once, and nothing is created for a bad value.
    if args.resume is not None:
        if args.resume in ("", "all"):
            raise runs.RunError(f"Invalid value for `resume`: '{args.resume}'. Expected one run "
                                f"folder: a path to it, or its name in '{args.runs_dir}' (see "
                                "kexp runs; runs elsewhere: --runs-dir DIR).")
        resumed_dir = runs.resolve_run(args.resume, args.runs_dir, allow_all=False)[0]
    else:
        config = config_module.check_memory(TrainConfig(**training_values(args)).validate())
        data.check_source(config.data)
        runs.prepare_runs_root(config.runs_dir)
    tf_startup.start_tensorflow()  # its start-up lines left out
    from kexp.training import trainer  # here, not at the top: only training imports TensorFlow

    try:
        run_dir = (trainer.resume(resumed_dir) if args.resume is not None
                   else trainer.train(config))
    except trainer.TrainingInterrupted as interrupted:
        name = signal.Signals(interrupted.signal_number).name
        print(f"\nkexp: interrupted by {name}; kernels and history so far are in "
              f"{interrupted.run_dir}\n"
              f"kexp: resume with: {shell_commands.resume_command(interrupted.run_dir)}",
              file=sys.stderr)
        return 128 + interrupted.signal_number
    status = runs.read_status(run_dir)
    print(f"kexp: finished {run_dir}: test accuracy {status['test_accuracy']:.4f} "
          f"in {status['seconds']:.1f} s")
    if status.get("figures_error"):  # the run is complete; only its figures are missing
        print(f"kexp train: error: the figures of {run_dir} were not drawn: "
              f"{status['figures_error']}. Draw them with: "
              f"{shell_commands.visualize_command(run_dir)}", file=sys.stderr)
        return _print_page(run_dir, 1)
    print(f"kexp: figures in {run_dir / runs.FIGURES_DIR}; redraw with: "
          f"{shell_commands.visualize_command(run_dir)}")
    return _print_page(run_dir, 0)


def _print_page(run_dir, code: int) -> int:
    """The run page's path as the command's last line, where it was written; `code` back."""
    if (run_dir / runs.PAGE_FILE).exists():
        print(f"kexp: the run's page: {run_dir / runs.PAGE_FILE}")
    return code


def _add_visualize_parser(subparsers) -> None:
    parser = add_command(subparsers, "visualize",
                         "(re)draw the figures of a run from its saved kernels", _visualize_command)
    add_run(parser)
    add_runs_dir(parser)


def _visualize_command(args) -> int:
    """One run: drawn, or an error (exit 2). RUN=all: every run that can be drawn is, each
    other one gets one line on stderr; exit 0 when at least one was drawn."""
    requested = runs.resolve_run(args.run, args.runs_dir)
    from kexp.views import plots, run_page  # here, after the check: a bad RUN is answered at once
    from kexp.views.run_replay import RunReplay

    drawn = 0
    for run_dir in requested:
        replay = RunReplay(run_dir)  # the figures and the page read and replay the run once
        try:
            written = plots.render_run(run_dir, replay)
        except (KexpError, OSError) as error:  # one bad run is named; the others are drawn
            if len(requested) == 1:
                raise
            print(f"kexp visualize: not drawn: {error}", file=sys.stderr)
            continue
        drawn += 1
        print(f"kexp: {run_dir}: drew {', '.join(path.name for path in written)}")
        print(f"kexp: the run's page: {run_page.write_run_page(run_dir, replay)}")
    if drawn < len(requested):
        print(f"kexp visualize: drew {drawn} of {len(requested)} runs", file=sys.stderr)
    return 0 if drawn else 2


def _add_runs_parser(subparsers) -> None:
    add_runs_dir(add_command(subparsers, "runs", "list runs with their status and accuracy",
                             _runs_command))


def _runs_command(args) -> int:
    found = runs.list_runs(args.runs_dir)
    if not found:
        print(f"No runs in '{args.runs_dir}'. Train one: "
              f"{shell_commands.kexp_command('train', '--runs-dir', args.runs_dir)}")
        return 0
    table = [("run", "status", "model", "epochs", "test acc", "")]
    for run_dir in found:
        try:  # every value shown is checked by its reader (a finite accuracy, a bounded count)
            status, config = runs.read_status(run_dir), runs.read_config(run_dir)
            epochs = status.get("epochs_completed")
            if epochs is None:  # still running or crashed: count what it logged
                epochs = len(runs.read_history(run_dir))
        except KexpError as error:  # one damaged run is reported; the others are listed
            table.append((run_dir.name, "unreadable", str(error), "", "", ""))
            continue
        accuracy = status.get("test_accuracy")
        note = (f"FIGURES NOT DRAWN: {shell_commands.visualize_command(run_dir)}"
                if status.get("figures_error") else "")
        table.append((run_dir.name, status["status"], config.model, str(epochs),
                      "-" if accuracy is None else f"{accuracy:.4f}", note))
    # Columns as wide as their widest cell (a long model name); an error runs on to the end.
    widths = [max(len(row[column]) for row in table if row[1] != "unreadable" or column < 2)
              for column in range(5)]
    for row in table:
        cells = row[:3] if row[1] == "unreadable" else row
        print(" ".join(cell.rjust(width) if column in (3, 4) else cell.ljust(width)
                       for column, (cell, width) in enumerate(zip(cells, [*widths, 0])))
              .rstrip())
    return 0


def _add_initializers_parser(subparsers) -> None:
    add_command(subparsers, "initializers",
                "list initializer names with their distribution for conv1", _initializers_command)


def _initializers_command(args) -> int:
    shape = (3, 3, 1, 32)
    print(f"Initializer names (distribution for a conv1 kernel {shape}):")
    for name in initializers.initializer_names():
        print(f"  {name:<18} {initializers.theory(name, shape).description}")
    print("Parameters: NAME:key=value,..., e.g. random_normal:stddev=0.5")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kexp", allow_abbrev=False,
        description="How are the numbers in a CNN filter decided? Train Keras "
        "models on MNIST and watch the 32 3x3 conv1 filters go from random to edge detectors.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(subparsers)
    _add_visualize_parser(subparsers)
    _add_runs_parser(subparsers)
    _add_initializers_parser(subparsers)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command: its exit code; a kexp error or a refused file operation prints one
    line (exit 2), and Ctrl-C outside a training's own handling one line too (exit 130)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (KexpError, OSError) as error:  # OSError: the system refused a file operation
        print(f"kexp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nkexp {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 128 + signal.SIGINT
