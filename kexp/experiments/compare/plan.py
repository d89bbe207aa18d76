"""The initializer study's plan: what to sweep, how each training is configured, where its
files go, and the numbers each training leaves in the summary.

The study folder, created exclusively:

    runs/compare-<timestamp>/
      runs/<timestamp>-<init>-<id>/   one ordinary run folder per training (kexp visualize works)
      logs/<init>-seed<S>.log         what each training printed
      logs/<init>-seed<S>.config.json the settings its process trained (TrainConfig.to_dict())
      logs/<init>-seed<S>.result.json its run folder and how it ended, as its process reported
      logs/<init>-seed<S>.checkpoint.tar  its latest checkpoint, while a Ray worker trains it
      study.json                      the plan (the Study's settings): what --resume reruns
      comparison.png                  conv1 before/after per initializer, curves, change, edges
      measures_by_epoch.png           accuracy and conv1's measures per epoch, a line per seed
      summary.csv, summary.json       one row per training
      index.html                      a static page that shows it all and links every run

numpy only: the sweep runs the trainings and the page draws; both read their layout from here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexp import config
from kexp.config import DEFAULTS, ConfigError, TrainConfig
from kexp.digits import data
from kexp.filters import analysis
from kexp.network import initializers
from kexp.probes import filter_views
from kexp.storage import atomic, files, runs
from kexp.validation import check_whole

# The study's defaults: they answer the question on 2 CPU cores in about 10 minutes (docs/study.md
# gives the measured time). Three seeds per initializer, so the spread between seeds is visible;
# the full grid (every initializer below, more seeds and epochs) is `make compare INITS=... `.
STUDY_INITIALIZERS = ("glorot_uniform", "he_normal", "random_normal:stddev=1.0", "zeros", "ones")
FULL_GRID_INITIALIZERS = ("glorot_uniform", "he_normal", "random_normal:stddev=0.01",
                          "random_normal:stddev=1.0", "orthogonal", "zeros", "ones")
OPTIONAL_INITIALIZERS = ("image_patches",)  # in the full grid where kexp provides them
STUDY_SEEDS = (0, 1, 2)
STUDY_EPOCHS = 15
STUDY_DATA = "mnist-5k"  # offline: 4,000 real MNIST training digits, 1,000 test digits
STUDY_SNAPSHOT_BATCHES = 4  # conv1 every 4 batches of the first epoch, for the animation
STUDY_JOBS = 2  # two processes beat one on 2 cores (about 20% here): TF leaves a core idle
# The stated accuracy: each training's first epoch whose validation accuracy reaches it is the
# summary's epochs_to_<accuracy> (how long an initializer needs, not only where it ends).
STUDY_TARGET_ACCURACY = 0.96
# The study trains the default recipe (`make train`: convnet_dense, augmentation, a cosine
# schedule, a validation slice scored every epoch), shortened from 60 epochs to STUDY_EPOCHS; the
# cosine schedule decays over the epochs planned, so the short runs finish their schedule too.
STUDY_MODEL = DEFAULTS.model
STUDY_RECIPE: dict = {}
# The Study's fields that are TrainConfig settings: `kexp compare` offers them as `kexp train`
# does (kexp.cli_options), with the study's defaults, and every training of the study gets them.
TRAINING_SETTINGS = ("epochs", "data", "train_samples", "model", "snapshot_every_batches",
                     "tensorboard")

RUNS_SUBDIR = runs.STUDY_RUNS_DIR
LOGS_SUBDIR = "logs"
LOG_SUFFIX = ".log"
CONFIG_SUFFIX = ".config.json"
RESULT_SUFFIX = ".result.json"
CHECKPOINT_SUFFIX = ".checkpoint.tar"
STUDY_FILE = runs.STUDY_FILE
FIGURE_FILE = "comparison.png"
EPOCHS_FIGURE_FILE = "measures_by_epoch.png"  # the measures per epoch, per initializer
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
INDEX_FILE = runs.PAGE_FILE
MAPS_DIGIT = 2  # the class of the probe digit whose conv1 maps the figure shows per initializer

SUMMARY_COLUMNS = (
    "initializer", "seed", "status", "reason", "run", "train_accuracy", "test_accuracy",
    "test_loss", "epochs", "seconds", "process_seconds", "conv1_mean_relative_change",
    "conv2_mean_relative_change", "conv1_distinct_initial", "conv1_distinct_final",
    "conv1_edge_likeness_initial", "conv1_edge_likeness_final", "val_accuracy_epoch_1",
    "val_accuracy_final", "epochs_to_target")
# Per training and epoch (0 = the initial kernels), in summary.json's "series": the measures
# from the first epoch to the last, read back from the run folder's kernels/ and history.csv.
# (Edge-likeness, not analysis.single_orientation_fraction: that one Hann-windows its image,
# and a 3-wide window keeps only a 3x3 filter's centre, so every filter scores the same.)
SERIES_MEASURES = ("val_accuracy", "conv1_relative_change", "conv1_distinct",
                   "conv1_edge_likeness")


def study_initializers() -> tuple[str, ...]:
    """The default list: the usual starts, one too large, and the two symmetric ones."""
    return STUDY_INITIALIZERS


def full_grid_initializers() -> tuple[str, ...]:
    """Every initializer the full grid compares, with kexp's own ones where they exist."""
    available = initializers.initializer_names()
    return FULL_GRID_INITIALIZERS + tuple(name for name in OPTIONAL_INITIALIZERS
                                          if name in available)


@dataclass
class Study:
    """What to sweep and how each training is configured (plain data, validated at once)."""

    initializers: list[str] = field(default_factory=lambda: list(study_initializers()))
    seeds: list[int] = field(default_factory=lambda: list(STUDY_SEEDS))
    epochs: int = STUDY_EPOCHS
    data: str = STUDY_DATA
    train_samples: int | None = DEFAULTS.train_samples
    model: str = STUDY_MODEL
    snapshot_every_batches: int = STUDY_SNAPSHOT_BATCHES
    tensorboard: bool = DEFAULTS.tensorboard
    jobs: int = STUDY_JOBS
    target_accuracy: float = STUDY_TARGET_ACCURACY
    runs_dir: str = DEFAULTS.runs_dir

    @classmethod
    def from_dict(cls, values: dict) -> "Study":
        """A Study from its settings (study.json), refusing a key it does not have as
        TrainConfig.from_dict does: a misspelt setting is named, not dropped."""
        return config.build_from(cls, values)

    def validate(self) -> "Study":
        """Check every training's config, that no two initializer specs are the same one, and
        that the data loads, before anything starts, with TrainConfig's messages."""
        if not self.initializers:
            raise ConfigError("Invalid value for `initializers`: ''. Expected one or more of: "
                              f"{', '.join(initializers.initializer_names())}.")
        if not self.seeds:
            raise ConfigError("Invalid value for `seeds`: ''. Expected whole numbers >= 0.")
        check_whole("jobs", self.jobs, 1, error=ConfigError)
        repeated = sorted({str(seed) for seed in self.seeds if self.seeds.count(seed) > 1})
        if not (isinstance(self.target_accuracy, (int, float)) and 0 < self.target_accuracy <= 1):
            raise ConfigError(f"Invalid value for `target_accuracy`: {self.target_accuracy!r}. "
                              "Expected a number in (0, 1].")
        if repeated:
            raise ConfigError(f"Invalid value for `seeds`: '{', '.join(repeated)}' given twice. "
                              "Expected each at most once.")
        seen: dict[str, str] = {}
        for init in self.initializers:
            spec = str(initializers.parse_spec(init))  # every parameter filled in
            if spec in seen:
                raise ConfigError(f"Invalid value for `initializers`: '{seen[spec]}' and "
                                  f"'{init}' are the same initializer ({spec}). Expected each "
                                  "at most once.")
            seen[spec] = init
            for seed in self.seeds:
                self.train_config(init, seed).validate()
        if problem := files.folder_problem(self.runs_dir):  # said before the data are loaded
            raise ConfigError(f"Invalid value for `runs_dir`: '{self.runs_dir}' {problem}. "
                              "Choose a writable folder with --runs-dir.")
        self.check_data()
        return self

    def check_data(self) -> None:
        """Load every data source the trainings will read (the study's, and image_patches'
        own) once, so a missing or damaged one stops the study before its folder exists."""
        data.load(self.data)
        patch_sources = {spec.params["data"] for spec in map(initializers.parse_spec,
                                                            self.initializers)
                         if spec.name == "image_patches"} - {self.data}
        for source in sorted(patch_sources):
            try:
                data.load(source)
            except data.DataError as error:
                raise initializers.patch_data_unavailable(source, error) from error

    def train_config(self, init: str, seed: int) -> TrainConfig:
        return TrainConfig(init=init, seed=seed, **STUDY_RECIPE,
                           **{name: getattr(self, name) for name in TRAINING_SETTINGS})


@dataclass
class Training:
    """One training of the sweep: its settings (runs_dir is set when it starts), and what
    became of it."""

    init: str
    seed: int
    config: TrainConfig
    status: str = "pending"
    reason: str = ""
    log_path: Path | None = None
    run_dir: Path | None = None
    wall_seconds: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.init} seed {self.seed}"

    def file(self, compare_dir: Path, suffix: str) -> Path:
        """logs/<init>-seed<S><suffix>: the training's log, config or result file. Where the
        spec has characters a file name does not keep, a hash of it keeps two specs apart
        ('mean= 2' and 'mean=-2' would both read 'mean=-2')."""
        stem = re.sub(r"[^A-Za-z0-9_.=-]+", "-", self.init)
        if stem != self.init:
            stem += "-" + hashlib.sha256(self.init.encode()).hexdigest()[:6]
        return Path(compare_dir) / LOGS_SUBDIR / f"{stem}-seed{self.seed}{suffix}"


def trainings(study: Study) -> list[Training]:
    """One Training per (initializer, seed), in the order the table lists them."""
    return [Training(init, seed, study.train_config(init, seed))
            for init in study.initializers for seed in study.seeds]


def create_compare_dir(runs_dir: str | os.PathLike) -> Path:
    """runs/compare-<timestamp>/, created exclusively (a suffix if two start in one second)."""
    stamp = runs.folder_stamp()
    names = [f"compare-{stamp}"] + [f"compare-{stamp}-{attempt}" for attempt in range(2, 1000)]
    return runs.create_exclusive_dir(runs.prepare_runs_root(runs_dir), names,
                                     (RUNS_SUBDIR, LOGS_SUBDIR))


def _mean(values: np.ndarray) -> float | None:
    """Mean relative change per filter: inf when a filter that started at exactly 0 moved (its
    relative change is infinite: the cell must show it, not stay blank), None without values."""
    values = np.asarray(values, dtype=float)
    if not values.size:
        return None
    return math.inf if np.isinf(values).any() else round(float(values.mean()), 6)


def _round(value, digits: int = 6):
    return None if value is None else round(float(value), digits)


def epochs_to(accuracies: list, target: float) -> int | None:
    """The first epoch (1-based) whose accuracy reaches `target`; None if none does."""
    return next((epoch for epoch, accuracy in enumerate(accuracies, start=1)
                 if accuracy is not None and accuracy >= target), None)


def epoch_series(run_dir: Path, history: list[dict]) -> dict:
    """The run's measures per epoch, from its files: validation accuracy (history.csv; None at
    epoch 0 and without a validation slice) and conv1's mean relative change from the start,
    distinct filters and mean edge-likeness (kernels/initial.npz, epoch_NNN.npz)."""
    snapshots = dict(runs.snapshot_sequence(run_dir))
    if runs.INITIAL not in snapshots:
        return {}
    initial = runs.load_kernels(snapshots[runs.INITIAL])["conv1"]
    accuracy = {entry["epoch"]: entry.get("val_accuracy") for entry in history}
    series: dict[str, list] = {"epoch": []} | {name: [] for name in SERIES_MEASURES}
    epochs = [0] + [epoch for epoch in sorted(accuracy)
                    if runs.epoch_label(epoch) in snapshots]
    for epoch in epochs:
        kernel = initial if epoch == 0 else runs.load_kernels(
            snapshots[runs.epoch_label(epoch)])["conv1"]
        series["epoch"].append(epoch)
        series["val_accuracy"].append(_round(accuracy.get(epoch)))
        series["conv1_relative_change"].append(_mean(analysis.relative_change(initial, kernel)))
        series["conv1_distinct"].append(analysis.distinct_filters(kernel))
        series["conv1_edge_likeness"].append(_round(analysis.edge_likeness(kernel).mean(), 4))
    return series


def measure(training: Training, compare_dir: Path,
            target_accuracy: float = STUDY_TARGET_ACCURACY) -> tuple[dict, dict]:
    """The summary row of one training, and what the figures draw (empty on failure):
    details["series"] holds its measures per epoch."""
    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(initializer=training.init, seed=training.seed, status=training.status,
               reason=training.reason, process_seconds=training.wall_seconds)
    if training.run_dir is None:
        return row, {}
    row["run"] = os.path.relpath(training.run_dir, compare_dir)
    history = runs.read_history(training.run_dir)
    row["epochs"] = len(history)
    details: dict = {"history": history, "series": epoch_series(training.run_dir, history)}
    accuracies = [entry.get("val_accuracy") for entry in history]
    if accuracies and accuracies[0] is not None:
        row.update(val_accuracy_epoch_1=_round(accuracies[0]),
                   val_accuracy_final=_round(accuracies[-1]),
                   epochs_to_target=epochs_to(accuracies, target_accuracy))
    if training.status == runs.STATUS_FINISHED:
        status = runs.read_status(training.run_dir)
        row.update(train_accuracy=_round(status.get("train_accuracy")),
                   test_accuracy=_round(status.get("test_accuracy")),
                   test_loss=_round(status.get("test_loss")), seconds=status.get("seconds"))
    sequence = runs.snapshot_sequence(training.run_dir)
    if len(sequence) < 2 or sequence[0][0] != "initial":
        return row, details
    before, after = runs.load_kernels(sequence[0][1]), runs.load_kernels(sequence[-1][1])
    for layer in config.CONV_LAYERS:  # every model has both
        change = analysis.relative_change(before[layer], after[layer])
        row[f"{layer}_mean_relative_change"] = _mean(change)
        details[f"{layer}_change"] = change
    conv1_before, conv1_after = before["conv1"], after["conv1"]
    edge_before = analysis.edge_likeness(conv1_before)
    edge_after = analysis.edge_likeness(conv1_after)
    row.update(conv1_distinct_initial=analysis.distinct_filters(conv1_before),
               conv1_distinct_final=analysis.distinct_filters(conv1_after),
               conv1_edge_likeness_initial=_round(edge_before.mean(), 4),
               conv1_edge_likeness_final=_round(edge_after.mean(), 4))
    details.update(conv1_before=conv1_before, conv1_after=conv1_after,
                   edge_before=edge_before, edge_after=edge_after)
    details.update(digit_maps(training.run_dir, sequence[0][1], sequence[-1][1]))
    return row, details


def digit_maps(run_dir: Path, before: Path, after: Path) -> dict:
    """conv1's maps of one probe digit (class MAPS_DIGIT) before and after training, for the
    figure: {"digit": (28, 28), "conv1_maps_before"/"_after": (h, w, 32)}; {} for runs
    without probe digits or biases."""
    if not filter_views.has_probe_digits(run_dir):
        return {}
    images, labels = filter_views.read_probe_digits(run_dir)
    chosen = np.flatnonzero(labels == MAPS_DIGIT)[:1]
    if not len(chosen):
        return {}
    found = {when: filter_views.run_snapshot_maps(run_dir, path, images[chosen])
             for when, path in (("before", before), ("after", after))}
    if None in found.values():
        return {}
    return {"digit": images[chosen[0], ..., 0], **{f"conv1_maps_{when}": maps["conv1"][0]
                                                    for when, maps in found.items()}}


def write_summary(compare_dir: Path, study: Study, rows: list[dict],
                  series: list[dict] | None = None) -> list[Path]:
    """summary.csv and summary.json: the same rows (None is an empty CSV cell); summary.json
    adds each training's measures per epoch ("series", in the rows' order)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()}
                     for row in rows)
    settings = {key: value for key, value in vars(study).items() if key != "runs_dir"}
    return [atomic.write_bytes_atomic(compare_dir / SUMMARY_CSV, buffer.getvalue().encode()),
            atomic.write_json_atomic(compare_dir / SUMMARY_JSON,
                                   {"created": runs.now_iso(), "study": settings, "rows": rows,
                                    "series": [{"initializer": row["initializer"],
                                                "seed": row["seed"], **(found or {})}
                                               for row, found in zip(rows, series or
                                                                     [{}] * len(rows))]})]
