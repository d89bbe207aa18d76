"""One training of the study, in its own process:
`python -m kexp.experiments.compare.child CONFIG_JSON RESULT_JSON [--threads N] [--resume RUN]`.

CONFIG_JSON holds the settings as `TrainConfig.to_dict()` writes them (the "config" of a run's
config.json). The process trains them with `kexp.training.trainer.train` (or continues RUN
from its last checkpoint with `kexp.training.trainer.resume`) and writes RESULT_JSON,
atomically: `{"run_dir": path or null, "status": finished | interrupted | failed, "reason":
text}`. Its output goes wherever the parent sends it (the study's log file); the parent reads
nothing from it.
`--threads N` keeps TensorFlow to the N CPUs the engine gave this training: by default it sizes
its thread pools to the whole machine, and trainings running side by side then fight for cores.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path

import tensorflow as tf

from kexp.storage import atomic, runs
from kexp.training import trainer

from kexp.config import TrainConfig
from kexp.experiments.compare.sweep import PARENT_PID_VARIABLE


def die_with_parent() -> None:
    """Linux only: SIGKILL this process when the parent named in KEXP_PARENT_PID exits, and exit
    now if it already has. Elsewhere a lost worker's training runs to its end, unread."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        os._exit(1)


def limit_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op pools to `threads` each; before any TF op runs."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def train_and_report(config: TrainConfig, result_path: Path, resume_run: Path | None = None
                     ) -> int:
    """Train `config` (or continue `resume_run`), then write where and how it ended to
    `result_path`; the exit code."""
    run_dir, status, reason, exit_code = resume_run, runs.STATUS_FAILED, "", 1
    try:
        run_dir = trainer.train(config) if resume_run is None else trainer.resume(resume_run)
        status, exit_code = runs.STATUS_FINISHED, 0
    except trainer.TrainingInterrupted as interrupted:
        run_dir, status = interrupted.run_dir, runs.STATUS_INTERRUPTED
        exit_code = 128 + interrupted.signal_number
        reason = f"interrupted by {signal.Signals(interrupted.signal_number).name}"
    except BaseException as error:  # a failed training is a row of the study, not a crash
        traceback.print_exc()
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        run_dir = run_dir or runs.run_of_process(config.runs_dir, os.getpid())
    atomic.write_json_atomic(result_path, {"run_dir": None if run_dir is None else str(run_dir),
                                         "status": status, "reason": reason})
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kexp.experiments.compare.child", allow_abbrev=False,
        description="Train one configuration of `kexp compare` and report its run folder.")
    parser.add_argument("config_file", type=Path, help="JSON of TrainConfig.to_dict()")
    parser.add_argument("result_file", type=Path, help="where the outcome is written")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow threads per pool (default: TensorFlow's, all cores)")
    parser.add_argument("--resume", type=Path, default=None, metavar="RUN",
                        help="continue this run folder from its last checkpoint")
    args = parser.parse_args(argv)
    die_with_parent()
    if args.threads:
        limit_threads(args.threads)
    config = TrainConfig.from_dict(runs.read_json(args.config_file))
    return train_and_report(config, args.result_file, args.resume)


if __name__ == "__main__":
    sys.exit(main())
