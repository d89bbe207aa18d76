"""`kexp compare`: does the starting point matter? Train the same model under several
initializers and seeds, then lay the runs side by side.

Each training is its own `python -m kexp train` process, so `--jobs N` runs N at once and a
training that fails (or crashes) is recorded in the table without stopping the others. The
result is one folder, created exclusively:

    runs/compare-<timestamp>/
      runs/<timestamp>-<init>-<id>/   one ordinary run folder per training (kexp visualize works)
      logs/<init>-seed<S>.log         what each training printed
      comparison.png                  conv1 before/after per initializer, curves, change, edges
      summary.csv, summary.json       one row per training
      index.html                      a static page that shows it all and links every run

No TensorFlow in this process: it only starts trainings and reads their folders.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexp import analysis, initializers, runs
from kexp.config import DEFAULTS, ConfigError, TrainConfig

# The study's defaults: small enough that the whole sweep takes minutes on 2 CPU cores.
STUDY_INITIALIZERS = ("glorot_uniform", "he_normal", "random_normal:stddev=0.01",
                      "random_normal:stddev=1.0", "orthogonal", "zeros", "ones")
OPTIONAL_INITIALIZERS = ("image_patches",)  # added when kexp.custom_initializers provides them
STUDY_SEEDS = (0, 1)
STUDY_EPOCHS = 5
STUDY_DATA = "mnist-5k"  # offline: 4,000 real MNIST training digits, 1,000 test digits
STUDY_SNAPSHOT_BATCHES = 4  # conv1 every 4 batches of the first epoch, for the animation
STUDY_JOBS = 2  # two processes beat one on 2 cores (about 20% here): TF leaves a core idle

RUNS_SUBDIR = "runs"
LOGS_SUBDIR = "logs"
FIGURE_FILE = "comparison.png"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
INDEX_FILE = "index.html"
RUN_FOLDER_LINE = re.compile(r"^kexp: run folder (.+)$", re.MULTILINE)

SUMMARY_COLUMNS = (
    "initializer", "seed", "status", "reason", "run", "train_accuracy", "test_accuracy",
    "test_loss", "epochs", "seconds", "process_seconds", "conv1_mean_relative_change",
    "conv2_mean_relative_change", "conv1_distinct_initial", "conv1_distinct_final",
    "conv1_edge_likeness_initial", "conv1_edge_likeness_final")


def study_initializers() -> tuple[str, ...]:
    """The default list, with kexp's own initializers where they exist."""
    available = initializers.initializer_names()
    return STUDY_INITIALIZERS + tuple(name for name in OPTIONAL_INITIALIZERS if name in available)


def jobs_from_makeflags(makeflags: str | None = None) -> int | None:
    """N from `make -j N compare` (GNU make puts -jN into MAKEFLAGS), or None."""
    found = re.search(r"(?:^|\s)-j(\d+)", os.environ.get("MAKEFLAGS", "") if makeflags is None
                      else makeflags)
    return int(found.group(1)) if found else None


@dataclass
class Study:
    """What to sweep and how each training is configured (plain data, validated at once)."""

    initializers: list[str] = field(default_factory=lambda: list(study_initializers()))
    seeds: list[int] = field(default_factory=lambda: list(STUDY_SEEDS))
    epochs: int = STUDY_EPOCHS
    data: str = STUDY_DATA
    train_samples: int | None = None
    model: str = DEFAULTS.model
    snapshot_every_batches: int = STUDY_SNAPSHOT_BATCHES
    tensorboard: bool = False
    jobs: int = STUDY_JOBS
    runs_dir: str = DEFAULTS.runs_dir

    def validate(self) -> "Study":
        """Check every training's config before anything starts, with TrainConfig's messages."""
        if not self.initializers:
            raise ConfigError("Invalid value for `initializers`: ''. Expected one or more of: "
                              f"{', '.join(initializers.initializer_names())}.")
        if not self.seeds:
            raise ConfigError("Invalid value for `seeds`: ''. Expected whole numbers >= 0.")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError(f"Invalid value for `jobs`: {self.jobs!r}. "
                              "Expected a whole number >= 1.")
        for name, values in (("initializers", self.initializers), ("seeds", self.seeds)):
            repeated = sorted({str(value) for value in values if values.count(value) > 1})
            if repeated:
                raise ConfigError(f"Invalid value for `{name}`: '{', '.join(repeated)}' "
                                  "given twice. Expected each at most once.")
        for init in self.initializers:
            for seed in self.seeds:
                self.train_config(init, seed).validate()
        return self

    def train_config(self, init: str, seed: int) -> TrainConfig:
        return TrainConfig(model=self.model, init=init, seed=seed, epochs=self.epochs,
                           data=self.data, train_samples=self.train_samples,
                           snapshot_every_batches=self.snapshot_every_batches,
                           tensorboard=self.tensorboard)


@dataclass
class Training:
    """One training of the sweep: its `kexp train` arguments, and what became of it."""

    init: str
    seed: int
    arguments: list[str]  # for `python -m kexp train`, without --runs-dir
    status: str = "pending"
    reason: str = ""
    log_path: Path | None = None
    run_dir: Path | None = None
    wall_seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.init} seed {self.seed}"


def train_arguments(config: TrainConfig) -> list[str]:
    """The `kexp train` command line that trains `config`."""
    arguments = ["--model", config.model, "--init", config.init, "--seed", str(config.seed),
                 "--epochs", str(config.epochs), "--data", config.data,
                 "--snapshot-batches", str(config.snapshot_every_batches)]
    if config.train_samples is not None:
        arguments += ["--train-samples", str(config.train_samples)]
    if config.tensorboard:
        arguments.append("--tensorboard")
    return arguments


def plan(study: Study) -> list[Training]:
    """One Training per (initializer, seed), in the order the table lists them."""
    return [Training(init, seed, train_arguments(study.train_config(init, seed)))
            for init in study.initializers for seed in study.seeds]


def create_compare_dir(runs_dir: str | os.PathLike) -> Path:
    """runs/compare-<timestamp>/, created exclusively (a suffix if two start in one second)."""
    root = runs.prepare_runs_root(runs_dir)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        compare_dir = root / (f"compare-{stamp}" if attempt == 1 else f"compare-{stamp}-{attempt}")
        try:
            compare_dir.mkdir()
        except FileExistsError:
            continue
        (compare_dir / RUNS_SUBDIR).mkdir()
        (compare_dir / LOGS_SUBDIR).mkdir()
        return compare_dir
    raise runs.RunError(f"Cannot create a compare folder in '{root}': too many exist.")


def _failure_reason(training: Training, returncode: int) -> str:
    """Why a training failed: its run's status.json if it got that far, else its last error
    line, else the exit code or signal."""
    if training.run_dir is not None and (training.run_dir / runs.STATUS_FILE).exists():
        reason = runs.read_status(training.run_dir).get("reason")
        if reason:
            return reason
    text = training.log_path.read_text(encoding="utf-8", errors="replace")
    for line in reversed(text.splitlines()):
        if re.search(r"error|exception|killed", line, re.IGNORECASE):
            return line.strip()[:300]
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _start(training: Training, compare_dir: Path) -> subprocess.Popen:
    """Start `kexp train` with its run folder in <compare>/runs and its output in <compare>/logs."""
    stem = re.sub(r"[^A-Za-z0-9_.=-]+", "-", f"{training.init}-seed{training.seed}")
    training.log_path = compare_dir / LOGS_SUBDIR / f"{stem}.log"
    arguments = [*training.arguments, "--runs-dir", str(compare_dir / RUNS_SUBDIR)]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(training.log_path, "xb") as log:
        return subprocess.Popen([sys.executable, "-m", "kexp", "train", *arguments],
                                stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=environment)


def _finish(training: Training, returncode: int) -> None:
    text = training.log_path.read_text(encoding="utf-8", errors="replace")
    found = RUN_FOLDER_LINE.findall(text)
    training.run_dir = Path(found[-1].strip()) if found else None
    status = runs.read_status(training.run_dir)["status"] if training.run_dir else None
    if returncode == 0 and status == runs.STATUS_FINISHED:
        training.status = runs.STATUS_FINISHED
    else:
        training.status = status if status == runs.STATUS_INTERRUPTED else runs.STATUS_FAILED
        training.reason = _failure_reason(training, returncode)


def _stop(process: subprocess.Popen, grace_seconds: float = 30) -> None:
    """Let an interrupted training save its kernels and status: a terminal's Ctrl-C reached it
    already; if it is still running after a grace period, send it one, then kill it."""
    for ask in (None, signal.SIGINT, signal.SIGKILL):
        if ask is not None:
            process.send_signal(ask)
        try:
            process.wait(timeout=grace_seconds)
            return
        except subprocess.TimeoutExpired:
            continue


def _say(line: str) -> None:
    """Progress lines appear at once, also when stdout is a file or a pipe (CI, make)."""
    print(line, flush=True)


def run_trainings(trainings: list[Training], compare_dir: Path, jobs: int, say=_say
                  ) -> list[Training]:
    """Run every training as its own process, `jobs` at a time; print a line as each starts and
    ends. A failure is recorded on its Training; the others go on. Ctrl-C interrupts the running
    ones (they save their kernels) and the sweep stops starting new ones."""
    waiting = list(trainings)
    running: dict[subprocess.Popen, tuple[Training, float]] = {}
    total, done = len(trainings), 0
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                training = waiting.pop(0)
                training.status = runs.STATUS_RUNNING
                running[_start(training, compare_dir)] = (training, time.perf_counter())
                say(f"kexp compare: started  {training.label} "
                    f"({total - len(waiting)}/{total} started, {len(running)} running)")
            time.sleep(0.2)
            for process in [p for p in running if p.poll() is not None]:
                training, started = running.pop(process)
                training.wall_seconds = round(time.perf_counter() - started, 1)
                _finish(training, process.returncode)
                done += 1
                outcome = (f"test accuracy {runs.read_status(training.run_dir)['test_accuracy']:.4f}"
                           if training.status == runs.STATUS_FINISHED
                           else f"{training.status.upper()}: {training.reason}")
                say(f"kexp compare: finished {training.label} ({done}/{total}) in "
                    f"{training.wall_seconds:.0f} s: {outcome}")
    except KeyboardInterrupt:
        for process, (training, started) in running.items():
            _stop(process)
            _finish(training, process.returncode)
        for training in waiting:
            training.status, training.reason = "skipped", "the sweep was interrupted"
        raise
    return trainings


def _mean(values: np.ndarray) -> float | None:
    """Mean of finite values, None if there are none (a filter that left exactly 0 has an
    infinite relative change)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return round(float(finite.mean()), 6) if finite.size else None


def _round(value, digits: int = 6):
    return None if value is None else round(float(value), digits)


def measure(training: Training, compare_dir: Path) -> tuple[dict, dict]:
    """The summary row of one training, and the arrays the figure draws (empty on failure)."""
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(initializer=training.init, seed=training.seed, status=training.status,
               reason=training.reason, process_seconds=training.wall_seconds)
    if training.run_dir is None:
        return row, {}
    row["run"] = os.path.relpath(training.run_dir, compare_dir)
    history = runs.read_history(training.run_dir)
    row["epochs"] = len(history)
    details: dict = {"history": history}
    if training.status == runs.STATUS_FINISHED:
        status = runs.read_status(training.run_dir)
        row.update(train_accuracy=_round(status.get("train_accuracy")),
                   test_accuracy=_round(status.get("test_accuracy")),
                   test_loss=_round(status.get("test_loss")), seconds=status.get("seconds"))
    sequence = runs.snapshot_sequence(training.run_dir)
    if len(sequence) < 2 or sequence[0][0] != "initial":
        return row, details
    before, after = runs.load_kernels(sequence[0][1]), runs.load_kernels(sequence[-1][1])
    for layer in ("conv1", "conv2"):
        if layer in before:
            change = analysis.relative_change(before[layer], after[layer])
            row[f"{layer}_mean_relative_change"] = _mean(change)
            details[f"{layer}_change"] = change
    conv1_before, conv1_after = before["conv1"], after["conv1"]
    edge_before, edge_after = analysis.edge_likeness(conv1_before), analysis.edge_likeness(conv1_after)
    row.update(conv1_distinct_initial=analysis.distinct_filters(conv1_before),
               conv1_distinct_final=analysis.distinct_filters(conv1_after),
               conv1_edge_likeness_initial=_round(edge_before.mean(), 4),
               conv1_edge_likeness_final=_round(edge_after.mean(), 4))
    details.update(conv1_before=conv1_before, conv1_after=conv1_after,
                   edge_before=edge_before, edge_after=edge_after)
    return row, details


def write_summary(compare_dir: Path, study: Study, rows: list[dict]) -> list[Path]:
    """summary.csv and summary.json: the same rows (None is an empty CSV cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()}
                     for row in rows)
    settings = {key: value for key, value in vars(study).items() if key != "runs_dir"}
    return [runs.write_bytes_atomic(compare_dir / SUMMARY_CSV, buffer.getvalue().encode()),
            runs.write_json_atomic(compare_dir / SUMMARY_JSON,
                                   {"created": runs.now_iso(), "study": settings, "rows": rows})]


def run_study(study: Study, say=_say, trainings: list[Training] | None = None) -> Path:
    """Validate, create the compare folder, train everything, then write the figure, the
    tables, an animation per run and the page. Returns the compare folder. `trainings` replaces
    the planned ones (tests use it to add a training that fails)."""
    from kexp import animate, compare_page

    study.validate()
    compare_dir = create_compare_dir(study.runs_dir)
    say(f"kexp compare: {compare_dir}; {len(study.initializers)} initializer(s) x "
        f"{len(study.seeds)} seed(s), {study.epochs} epoch(s) on {study.data}, "
        f"{study.jobs} at a time")
    trainings = plan(study) if trainings is None else trainings
    started = time.perf_counter()
    try:
        run_trainings(trainings, compare_dir, study.jobs, say)
    except KeyboardInterrupt:
        say(f"kexp compare: interrupted; {compare_dir / SUMMARY_CSV} lists what finished")
        raise
    finally:
        measured = [measure(training, compare_dir) for training in trainings]
        rows = [row for row, _ in measured]
        write_summary(compare_dir, study, rows)
    for training in trainings:
        if training.status == runs.STATUS_FINISHED:
            animate.animate_run(training.run_dir)
    compare_page.plot_comparison(measured, compare_dir / FIGURE_FILE, study)
    compare_page.write_index(compare_dir, study, measured, time.perf_counter() - started,
                             {(t.init, t.seed): t.log_path for t in trainings})
    failed = sum(training.status != runs.STATUS_FINISHED for training in trainings)
    say(f"kexp compare: {len(trainings) - failed} finished, {failed} failed, in "
        f"{time.perf_counter() - started:.0f} s")
    say(f"kexp compare: open {compare_dir / INDEX_FILE}")
    return compare_dir


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="train under several initializers and seeds and compare the runs",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--inits", nargs="+", default=list(study_initializers()),
                        metavar="SPEC", help="initializer specs, NAME or NAME:key=value,...")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(STUDY_SEEDS),
                        metavar="SEED", help="one training per initializer and seed")
    parser.add_argument("--epochs", type=int, default=STUDY_EPOCHS, help="epochs per training")
    parser.add_argument("--data", default=STUDY_DATA,
                        help="as for `kexp train`; mnist-5k needs no network")
    parser.add_argument("--train-samples", type=int, default=None,
                        help="use at most this many training samples (None: all)")
    parser.add_argument("--model", default=DEFAULTS.model, help="as for `kexp train`")
    parser.add_argument("--snapshot-batches", type=int, default=STUDY_SNAPSHOT_BATCHES,
                        help="snapshot conv1 every K batches of the first epoch (animation)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="each training also writes TensorBoard logs")
    parser.add_argument("--jobs", type=int, default=jobs_from_makeflags() or STUDY_JOBS,
                        help="trainings at once (`make -j N compare` sets N)")
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir,
                        help="the compare-<timestamp> folder is created here")
    parser.set_defaults(func=_compare_command)


def _compare_command(args) -> int:
    study = Study(initializers=args.inits, seeds=args.seeds, epochs=args.epochs, data=args.data,
                  train_samples=args.train_samples, model=args.model,
                  snapshot_every_batches=args.snapshot_batches, tensorboard=args.tensorboard,
                  jobs=args.jobs, runs_dir=args.runs_dir)
    try:
        run_study(study)
    except KeyboardInterrupt:
        return 130
    return 0
