"""`kexp compare`: does the starting point matter? Train the same model under several
initializers and seeds, then lay the runs side by side.

plan -> sweep -> page: validate the whole study and create its folder (plan), train each
(initializer, seed) in its own process, `--jobs N` at once (sweep) or as Ray tasks on a cluster
(`--engine ray`, ray_engine), then write the summary, an animation per run, the comparison
figure and index.html (page). The folder's layout is in plan; `--resume` continues a study
folder from what it recorded (record).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from kexp import shell_commands
from kexp.cli_options import (add_command, add_runs_dir, add_train_options, training_values,
                              whole_number)
from kexp.experiments import animate
from kexp.experiments.compare import engines, page, plan, record, study_figures, sweep
from kexp.storage import run_lock, runs
from kexp.training import stop_signals


def jobs_from_makeflags(makeflags: str | None = None) -> int | None:
    """N from `make -j N compare` (GNU make puts -jN into MAKEFLAGS), or None."""
    found = re.search(r"(?:^|\s)-j(\d+)", os.environ.get("MAKEFLAGS", "") if makeflags is None
                      else makeflags)
    return int(found.group(1)) if found else None


def run_study(study: plan.Study, say=sweep.say,
              trainings: list[plan.Training] | None = None, engine=None) -> Path:
    """Validate, create the compare folder, train everything on `engine` (None: the local pool
    with `study.jobs`), then write the figure, the tables, an animation per run and the page.
    Returns the compare folder. `trainings` replaces the planned ones (tests use it to add a
    training that fails)."""
    study.validate()
    engine = engines.LocalEngine(study.jobs) if engine is None else engine
    with engine.connected(), contextlib.ExitStack() as lock:
        compare_dir = plan.create_compare_dir(study.runs_dir)
        lock.enter_context(run_lock.hold(compare_dir))  # one driver per study: see resume_study
        record.write_study(compare_dir, study)
        say(f"kexp compare: {compare_dir}; {len(study.initializers)} initializer(s) x "
            f"{len(study.seeds)} seed(s), {study.epochs} epoch(s) on {study.data}, "
            f"{engine.describe()}")
        trainings = plan.trainings(study) if trainings is None else trainings
        measured, seconds = _train(study, compare_dir, trainings, engine, say)
    return _report(study, compare_dir, trainings, measured, seconds, say)


def resume_study(compare_dir: Path, say=sweep.say, engine=None) -> Path:
    """Continue the study in `compare_dir`: train only what did not finish (from its last
    checkpoint where it has one), then rewrite the tables, the figure and the page."""
    compare_dir = Path(compare_dir)
    study = record.read_study(compare_dir)
    engine = engines.LocalEngine(study.jobs) if engine is None else engine
    with run_lock.hold(compare_dir):  # refused while the study's driver still runs
        trainings = record.recorded_trainings(compare_dir, study)
        unfinished = [t for t in trainings if t.status != runs.STATUS_FINISHED]
        with engine.connected():
            say(f"kexp compare: resuming {compare_dir}; {len(trainings) - len(unfinished)} of "
                f"{len(trainings)} trainings finished, {len(unfinished)} to run, "
                f"{engine.describe()}")
            measured, seconds = _train(study, compare_dir, trainings, engine, say, unfinished)
    return _report(study, compare_dir, trainings, measured, seconds, say)


def _train(study, compare_dir, trainings, engine, say, to_run=None):
    """Run `to_run` (default: all `trainings`) on the engine; the summary is written even when
    the sweep is interrupted. Returns every training's measurements and the seconds taken."""
    started = time.perf_counter()
    # One stop signal stops the sweep; a second one (Ctrl-C twice, a scheduler's repeated
    # SIGTERM) is ignored until every training is stopped and recorded and the summary written.
    with stop_signals.stop_on_signals():
        try:
            engine.run(trainings if to_run is None else to_run, compare_dir, say)
        except KeyboardInterrupt:
            say(f"kexp compare: interrupted; {compare_dir / plan.SUMMARY_CSV} lists what "
                "finished; continue with: "
                f"{shell_commands.kexp_command('compare', '--resume', compare_dir)}")
            raise
        finally:
            measured = [plan.measure(training, compare_dir, study.target_accuracy)
                        for training in trainings]
            plan.write_summary(compare_dir, study, [row for row, _ in measured],
                               [details.get("series", {}) for _, details in measured])
    return measured, time.perf_counter() - started


def _report(study, compare_dir, trainings, measured, seconds, say) -> Path:
    for training in trainings:
        if training.status == runs.STATUS_FINISHED:
            animate.animate_run(training.run_dir)
    study_figures.plot_comparison(measured, compare_dir / plan.FIGURE_FILE, study)
    study_figures.plot_epochs(measured, compare_dir / plan.EPOCHS_FIGURE_FILE, study)
    page.write_index(compare_dir, study, measured, seconds,
                     {(t.init, t.seed): t.log_path for t in trainings})
    failed = sum(training.status != runs.STATUS_FINISHED for training in trainings)
    say(f"kexp compare: {len(trainings) - failed} finished, {failed} failed, in "
        f"{seconds:.0f} s")
    say(f"kexp compare: open {compare_dir / plan.INDEX_FILE}")
    return compare_dir


def add_parser(subparsers) -> None:
    defaults = plan.Study()
    parser = add_command(subparsers, "compare", "train under several initializers and seeds "
                         "and compare the runs", run_command)
    parser.add_argument("--inits", nargs="+", default=defaults.initializers,
                        metavar="SPEC", help="initializer specs, NAME or NAME:key=value,...")
    parser.add_argument("--full-grid", action="store_true",
                        help="every initializer of the full grid: "
                             f"{' '.join(plan.full_grid_initializers())} (replaces --inits)")
    parser.add_argument("--seeds", nargs="+", type=whole_number, default=defaults.seeds,
                        metavar="SEED", help="one training per initializer and seed")
    parser.add_argument("--target-accuracy", type=float, default=defaults.target_accuracy,
                        help="the stated validation accuracy: each training's first epoch that "
                             "reaches it is its epochs_to_target")
    # The training settings a study varies from `kexp train`'s, as kexp.config describes them.
    add_train_options(parser, plan.TRAINING_SETTINGS,
                      {name: getattr(defaults, name) for name in plan.TRAINING_SETTINGS})
    parser.add_argument("--jobs", type=whole_number, default=None,
                        help=f"trainings at once (None: `make -j N compare`'s N; with --resume "
                             f"the study's own; else {defaults.jobs})")
    add_runs_dir(parser, "the compare-<timestamp> folder is created here")
    parser.add_argument("--engine", default="local",
                        help=f"where the trainings run: {' or '.join(engines.ENGINES)} (Ray "
                             "tasks; needs `pip install kexp[ray]`)")
    parser.add_argument("--address", default=None,
                        help="with --engine ray: the cluster's address, e.g. HEAD:6379 or auto "
                             "(None: a local Ray that kexp starts and stops)")
    parser.add_argument("--cpus-per-training", type=whole_number, default=None,
                        help="CPUs, and TensorFlow threads, per training (None: local: this "
                             "machine's CPUs / --jobs; ray: 1)")
    parser.add_argument("--resume", metavar="STUDY", default=None,
                        help="continue runs/compare-<timestamp>: train only what did not "
                             "finish (the study's settings come from its study.json)")


def run_command(args) -> int:
    """`kexp compare ...`: 0 when the study ran (failed trainings are rows), 128+N when signal N
    (Ctrl-C, SIGTERM, SIGHUP) stopped its sweep. Ctrl-C before or after the sweep ends it like
    any command (kexp.cli.main)."""
    # --jobs, else `make -j N`'s N, else (resuming) the study's own, else the plan's default
    jobs = args.jobs if args.jobs is not None else jobs_from_makeflags() or (
        record.read_study(Path(args.resume)).jobs if args.resume else plan.Study().jobs)
    engine = engines.make_engine(args.engine, jobs, args.address, args.cpus_per_training)
    inits = list(plan.full_grid_initializers()) if args.full_grid else args.inits
    study = plan.Study(initializers=inits, seeds=args.seeds, target_accuracy=args.target_accuracy,
                       jobs=jobs, **training_values(args))
    try:
        if args.resume:
            resume_study(Path(args.resume), engine=engine)
        else:
            run_study(study, engine=engine)
    except stop_signals.StopRequested as interruption:  # said so: run_study names the summary
        return 128 + interruption.signal_number
    return 0
