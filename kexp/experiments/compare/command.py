"""`kexp compare`: does the starting point matter? Train the same model under several
initializers and seeds, then lay the runs side by side.

plan -> sweep -> page: validate the whole study and create its folder (plan), train each
(initializer, seed) in its own process, `--jobs N` at once (sweep), then write the summary, an
animation per run, the comparison figure and index.html (page). The folder's layout is in plan.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

from kexp import runs, stop_signals
from kexp.experiments import animate
from kexp.experiments.compare import page, plan, sweep


def jobs_from_makeflags(makeflags: str | None = None) -> int | None:
    """N from `make -j N compare` (GNU make puts -jN into MAKEFLAGS), or None."""
    found = re.search(r"(?:^|\s)-j(\d+)", os.environ.get("MAKEFLAGS", "") if makeflags is None
                      else makeflags)
    return int(found.group(1)) if found else None


def run_study(study: plan.Study, say=sweep.say,
              trainings: list[plan.Training] | None = None) -> Path:
    """Validate, create the compare folder, train everything, then write the figure, the
    tables, an animation per run and the page. Returns the compare folder. `trainings` replaces
    the planned ones (tests use it to add a training that fails)."""
    study.validate()
    compare_dir = plan.create_compare_dir(study.runs_dir)
    say(f"kexp compare: {compare_dir}; {len(study.initializers)} initializer(s) x "
        f"{len(study.seeds)} seed(s), {study.epochs} epoch(s) on {study.data}, "
        f"{study.jobs} at a time")
    trainings = plan.trainings(study) if trainings is None else trainings
    started = time.perf_counter()
    try:
        sweep.run_trainings(trainings, compare_dir, study.jobs, say)
    except KeyboardInterrupt:
        say(f"kexp compare: interrupted; {compare_dir / plan.SUMMARY_CSV} lists what finished")
        raise
    finally:
        measured = [plan.measure(training, compare_dir) for training in trainings]
        plan.write_summary(compare_dir, study, [row for row, _ in measured])
    for training in trainings:
        if training.status == runs.STATUS_FINISHED:
            animate.animate_run(training.run_dir)
    page.plot_comparison(measured, compare_dir / plan.FIGURE_FILE, study)
    page.write_index(compare_dir, study, measured, time.perf_counter() - started,
                     {(t.init, t.seed): t.log_path for t in trainings})
    failed = sum(training.status != runs.STATUS_FINISHED for training in trainings)
    say(f"kexp compare: {len(trainings) - failed} finished, {failed} failed, in "
        f"{time.perf_counter() - started:.0f} s")
    say(f"kexp compare: open {compare_dir / plan.INDEX_FILE}")
    return compare_dir


def add_parser(subparsers) -> None:
    defaults = plan.Study()
    parser = subparsers.add_parser(
        "compare", help="train under several initializers and seeds and compare the runs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--inits", nargs="+", default=defaults.initializers,
                        metavar="SPEC", help="initializer specs, NAME or NAME:key=value,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=defaults.seeds,
                        metavar="SEED", help="one training per initializer and seed")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="epochs per training")
    parser.add_argument("--data", default=defaults.data,
                        help="as for `kexp train`; mnist-5k needs no network")
    parser.add_argument("--train-samples", type=int, default=defaults.train_samples,
                        help="use at most this many training samples (None: all)")
    parser.add_argument("--model", default=defaults.model, help="as for `kexp train`")
    parser.add_argument("--snapshot-batches", type=int, default=defaults.snapshot_every_batches,
                        help="snapshot conv1 every K batches of the first epoch (animation)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="each training also writes TensorBoard logs")
    parser.add_argument("--jobs", type=int, default=jobs_from_makeflags() or defaults.jobs,
                        help="trainings at once (`make -j N compare` sets N)")
    parser.add_argument("--runs-dir", default=defaults.runs_dir,
                        help="the compare-<timestamp> folder is created here")
    parser.set_defaults(func=run_command)


def run_command(args) -> int:
    """`kexp compare ...`: 0 when the study ran (failed trainings are rows), 128+N when signal N
    (Ctrl-C, SIGTERM, SIGHUP) stopped its sweep. Ctrl-C before or after the sweep ends it like
    any command (kexp.cli.main)."""
    study = plan.Study(initializers=args.inits, seeds=args.seeds, epochs=args.epochs,
                       data=args.data, train_samples=args.train_samples, model=args.model,
                       snapshot_every_batches=args.snapshot_batches,
                       tensorboard=args.tensorboard, jobs=args.jobs, runs_dir=args.runs_dir)
    try:
        run_study(study)
    except stop_signals.StopRequested as interruption:  # said so: run_study names the summary
        return 128 + interruption.signal_number
    return 0
