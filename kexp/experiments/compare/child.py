"""One training of the study, in its own process:
`python -m kexp.experiments.compare.child CONFIG_JSON RESULT_JSON`.

CONFIG_JSON holds the settings as `TrainConfig.to_dict()` writes them (the "config" of a run's
config.json). The process trains them with `kexp.training.train` and writes RESULT_JSON, atomically:
`{"run_dir": path or null, "status": finished | interrupted | failed, "reason": text}`. Its
output goes wherever the parent sends it (the study's log file); the parent reads nothing from it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

from kexp import atomic, runs, training
from kexp.config import TrainConfig


def train_and_report(config: TrainConfig, result_path: Path) -> int:
    """Train `config`, then write where and how it ended to `result_path`; the exit code."""
    run_dir, status, reason, exit_code = None, runs.STATUS_FAILED, "", 1
    try:
        run_dir = training.train(config)
        status, exit_code = runs.STATUS_FINISHED, 0
    except training.TrainingInterrupted as interrupted:
        run_dir, status = interrupted.run_dir, runs.STATUS_INTERRUPTED
        exit_code = 128 + interrupted.signal_number
        reason = f"interrupted by {signal.Signals(interrupted.signal_number).name}"
    except BaseException as error:  # a failed training is a row of the study, not a crash
        traceback.print_exc()
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        run_dir = runs.run_of_process(config.runs_dir, os.getpid())
    atomic.write_json_atomic(result_path, {"run_dir": None if run_dir is None else str(run_dir),
                                         "status": status, "reason": reason})
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.experiments.compare.child",
        description="Train one configuration of `kexp compare` and report its run folder.")
    parser.add_argument("config_file", type=Path, help="JSON of TrainConfig.to_dict()")
    parser.add_argument("result_file", type=Path, help="where the outcome is written")
    args = parser.parse_args(argv)
    config = TrainConfig.from_dict(runs.read_json(args.config_file))
    return train_and_report(config, args.result_file)


if __name__ == "__main__":
    sys.exit(main())
