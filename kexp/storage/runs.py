"""THE run-folder layout: its file names, snapshot labels and figure names, and creating a run
folder exclusively, writing into it atomically, reading it back and listing runs.

Every other module takes these names from here. A run folder is kexp's record of an experiment,
so nothing here may leave a half-written file: every write goes to a temporary name in the same
folder, is flushed to disk (fsync) and renamed into place (Keras' own saves write in place: a
full disk leaves a truncated file). The one exception is history.csv, appended and fsynced one row per epoch: its
reader leaves out a last row that a crash cut short. No Keras here, so listing and plotting start
fast.

    runs/<timestamp>-<init>-<id>/
      config.json  status.json  history.csv  model.keras
      index.html   the run's page: every filter from its random draw to what it became
                   (kexp.views.run_page; written after the figures, redrawn by `kexp visualize`)
      kernels/     initial.npz, epoch_001_batch_00004.npz, epoch_001.npz, ..., interrupted.npz,
                   final.npz: conv kernels by layer path (conv1, block/conv), biases under
                   "<layer path>/bias" (no layer path continues past a Conv2D: never a clash)
      views/       probe_digits.npz (the test digits the filter views use), optimal_inputs.npz
                   (before and after training; written at its end or by `kexp explain`),
                   forces.npz (per-class gradients of conv1 and conv2 on fixed training digits
                   at a few moments of training, kexp.training.forces)
      figures/     conv1_before_after.png, conv2_before_after.png, conv2_summary.png,
                   histograms.png, feature_maps.png, top_patches.png, optimal_inputs.png,
                   forces.png (and conv1_evolution.gif, drawn by `kexp animate`)
      checkpoint/  epoch_NNN.npz while training: the state `--resume` continues from
      tensorboard/ with --tensorboard
      .lock        while a process trains or resumes the run (kexp.storage.run_lock)
A resume keeps the interrupted.npz of attempt N as interrupted_attempt_N.npz, out of the sequence.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import re
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from kexp import shell_commands
from kexp.config import TrainConfig
from kexp.errors import RunError
from kexp.storage import atomic, files, run_lock
from kexp.storage.run_lock import LOCK_FILE  # noqa: F401  (the layout's names are read from here)
from kexp.storage.snapshots import (BIAS_SUFFIX, is_bias_key, load_biases,  # noqa: F401
                                    load_kernels, read_snapshot)  # (read as runs.X)

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"
STATUS_CRASHED = "crashed"  # derived when read: "running" but its process is gone

KERNELS_DIR = "kernels"
FIGURES_DIR = "figures"
CHECKPOINT_DIR = "checkpoint"
TENSORBOARD_DIR = "tensorboard"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"
VIEWS_DIR = "views"
PROBE_DIGITS_FILE = "probe_digits.npz"
OPTIMAL_INPUTS_FILE = "optimal_inputs.npz"
FORCES_FILE = "forces.npz"
PAGE_FILE = "index.html"  # the run's page (kexp.views.run_page); a study's page has the same name
# A study (`kexp compare`) keeps its trainings in <study>/runs/, beside its study.json.
STUDY_FILE = "study.json"
STUDY_RUNS_DIR = "runs"

# Kernel snapshots: <label>.npz in kernels/; epoch labels also name the checkpoints.
INITIAL = "initial"
FINAL = "final"
INTERRUPTED = "interrupted"
EPOCH_PREFIX = "epoch_"
SNAPSHOT_SUFFIX = ".npz"

# Figures in figures/, drawn by plots.render_run (and the animation by `kexp animate`).
CONV1_FIGURE = "conv1_before_after.png"
CONV2_FIGURE = "conv2_before_after.png"
CONV2_SUMMARY_FIGURE = "conv2_summary.png"
HISTOGRAMS_FIGURE = "histograms.png"
EVOLUTION_FIGURE = "conv1_evolution.gif"
FEATURE_MAPS_FIGURE = "feature_maps.png"
TOP_PATCHES_FIGURE = "top_patches.png"
OPTIMAL_INPUTS_FIGURE = "optimal_inputs.png"
FORCES_FIGURE = "forces.png"


def epoch_label(epoch: int) -> str:
    """Label of the snapshot (and checkpoint) after 1-based `epoch`."""
    return f"{EPOCH_PREFIX}{epoch:03d}"


def batch_label(epoch: int, batch: int) -> str:
    """Label of the snapshot after 1-based `batch` of 1-based `epoch`."""
    return f"{epoch_label(epoch)}_batch_{batch:05d}"


def archived_interrupted_label(attempt: int) -> str:
    """Where a resume keeps the interrupted.npz of attempt `attempt` (1: the first training):
    out of the training sequence, which the animation plays."""
    return f"{INTERRUPTED}_attempt_{attempt}"


def snapshot_name(label: str) -> str:
    """File name of the kernel snapshot `label`."""
    return f"{label}{SNAPSHOT_SUFFIX}"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", text).strip("-")[:40] or "run"


def prepare_runs_root(runs_root: str | os.PathLike) -> Path:
    """The runs directory, created if needed and checked writable (`prepare_folder`), so an
    unwritable --runs-dir fails before a model is built."""
    return files.prepare_folder(runs_root, "runs_dir", RunError)


def folder_stamp() -> str:
    """The local time that starts a folder name, e.g. 20260101-120000, so names sort by age."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def create_exclusive_dir(parent: Path, names: Iterable[str], subfolders: Iterable[str] = ()
                         ) -> Path:
    """Create the first of `names` that does not exist yet under `parent`, with its empty
    `subfolders`: mkdir fails on an existing folder, so two writers never share one."""
    for name in names:
        folder = Path(parent) / name
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        for subfolder in subfolders:
            (folder / subfolder).mkdir()
        return folder
    raise RunError(f"Cannot create a new folder in '{parent}': every name tried exists.")


def create_run_dir(runs_root: str | os.PathLike, label: str) -> Path:
    """Create a new, empty run folder; two runs never share one (mkdir fails if it exists)."""
    runs_root = prepare_runs_root(runs_root)
    stamp = folder_stamp()
    names = (f"{stamp}-{_slug(label)}-{uuid.uuid4().hex[:6]}" for _ in itertools.count())
    return create_exclusive_dir(runs_root, names, (KERNELS_DIR, FIGURES_DIR))


def read_json(path: Path) -> dict:
    """A JSON object kexp wrote; a damaged file raises RunError naming it (kexp.storage.files)."""
    return files.read_json_object(path, RunError)


CONFIG_KINDS = {"config": files.OBJECT, "data": files.OBJECT}
DATA_KINDS = {"source": files.TEXT, "sha256": files.TEXT, "used_train_samples": files.WHOLE}


def _read_config_file(run_dir: Path) -> tuple[Path, dict]:
    """config.json's path and contents, its sections checked: "config", "data", versions."""
    if problem := files.folder_problem(run_dir):  # a symlink loop or a link to nothing, named
        raise RunError(f"Cannot read '{run_dir}': it {problem}. Expected a run folder.")
    path = Path(run_dir) / CONFIG_FILE
    recorded = files.check_fields(read_json(path), CONFIG_KINDS, path, RunError,
                                  required=("config", "data"))
    files.check_fields(recorded["data"], DATA_KINDS, path, RunError, ("source", "sha256"))
    return path, recorded


def read_config(run_dir: Path) -> TrainConfig:
    """The settings a run was trained with (config.json's "config"), every field present and
    valid as TrainConfig checks it: callers read fields, never parse the file again."""
    path, recorded = _read_config_file(run_dir)
    try:
        return TrainConfig.from_dict(recorded["config"]).validate()
    except (ValueError, TypeError) as error:  # ConfigError, or a field of the wrong type
        raise RunError(f"Cannot read '{path}': its settings are invalid: {error}") from None


def read_data_record(run_dir: Path) -> dict:
    """The data a run trained on, as its config.json records it: source, sha256 (what a resume
    must load again), used_train_samples, description."""
    return _read_config_file(run_dir)[1]["data"]


def write_status(run_dir: Path, status: str, **fields) -> dict:
    """Replace status.json; keeps the fields written before (start time) and adds `fields`. The
    pid is always the writer's: a resumed run is alive while its new process is, and a run that
    (re)starts drops the reason it stopped before."""
    path = Path(run_dir) / STATUS_FILE
    previous = read_json(path) if path.exists() else {}
    if status == STATUS_RUNNING:
        previous = {key: value for key, value in previous.items()
                    if key not in ("reason", "resume")}
    payload = {**previous, **fields, "status": status, "updated": now_iso()}
    if status == STATUS_RUNNING and "started" not in payload:
        payload["started"] = payload["updated"]
    payload["pid"] = os.getpid()
    payload["host"] = socket.gethostname()
    atomic.write_json_atomic(path, payload)
    return payload


STATUS_KINDS = {"status": (STATUS_RUNNING, STATUS_FINISHED, STATUS_FAILED, STATUS_INTERRUPTED),
                **dict.fromkeys(("test_accuracy", "test_loss", "train_accuracy"), files.NUMBER),
                **dict.fromkeys(("epochs_completed", "pid", "attempt"), files.WHOLE)}


def read_status(run_dir: Path) -> dict:
    """status.json with a run whose writer died (no process holds its lock: a pid is reused,
    no proof) reported as crashed, not running."""
    path = Path(run_dir) / STATUS_FILE
    if not os.path.lexists(path):
        return {"status": STATUS_CRASHED, "reason": "no status.json"}
    status = files.check_fields(read_json(path), STATUS_KINDS, path, RunError, ("status",))
    if status.get("status") == STATUS_RUNNING and status.get("host") == socket.gethostname():
        held = run_lock.is_held(run_dir)
        if not (run_lock.process_alive(int(status.get("pid", -1))) if held is None else held):
            status = {**status, "status": STATUS_CRASHED,
                      "reason": f"process {status.get('pid')} is gone (no lock held on the run)"}
    return status


RUN_MARKERS = (CONFIG_FILE, STATUS_FILE, HISTORY_FILE, KERNELS_DIR)  # any makes a run folder


def is_run_dir(path: Path) -> bool:
    """A folder kexp made for a run, a damaged one too (no config.json): listed, reported."""
    return any(os.path.lexists(Path(path) / name) for name in RUN_MARKERS)


def list_runs(runs_root: str | os.PathLike) -> list[Path]:
    """Run folders under `runs_root`, oldest first (names start with a timestamp); a symlink
    loop or a link to nothing too, so that whoever reads it names what it is."""
    runs_root = Path(runs_root)
    if problem := files.folder_problem(runs_root):
        raise RunError(f"Invalid value for `runs_dir`: '{runs_root}' {problem}. Choose a "
                       "folder of runs with --runs-dir.")
    if not runs_root.is_dir():
        return []
    return sorted(path for path in runs_root.iterdir()
                  if (path.is_dir() and is_run_dir(path))
                  or (path.is_symlink() and files.folder_problem(path) is not None))


def resolve_run(run: str | None, runs_root: str | os.PathLike, allow_all: bool = True
                ) -> list[Path]:
    """The run folders a user means: None -> the newest, "all" -> every run (where
    `allow_all`), else one: a path to it wherever it lives, or its name inside `runs_root`. A
    symlink to a run folder is that run: the real folder is returned."""
    runs_root = Path(runs_root)
    runs = list_runs(runs_root)
    if run in (None, "") or (run == "all" and allow_all):
        if not runs:
            raise RunError(f"No runs in '{runs_root}'. Train one first: "
                           f"{shell_commands.kexp_command('train', '--runs-dir', runs_root)} "
                           "(or name the folder that holds your runs with --runs-dir).")
        return [Path(os.path.realpath(path)) for path in (runs if run == "all" else runs[-1:])]
    candidate = Path(run)
    if not candidate.is_absolute() and not os.path.lexists(candidate):
        candidate = runs_root / run
    problem = files.folder_problem(candidate) or (None if is_run_dir(candidate) else
                                            f"is not a run folder (no {' or '.join(RUN_MARKERS)})")
    if problem:
        names = ", ".join(path.name for path in runs[-3:]) or "none yet"
        raise RunError(f"Invalid value for `RUN`: '{run}' {problem}. Expected a path to a run "
                       f"folder, or the name of one in '{runs_root}' (newest: {names}; runs "
                       f"elsewhere: --runs-dir DIR){', or all' * allow_all}.")
    return [Path(os.path.realpath(candidate))]


def read_history(run_dir: Path) -> list[dict]:
    """Rows of a run's history.csv as dicts of floats (epoch as a rising int); [] if none
    yet. A last row cut short by a crash (no line end: history.csv is appended, not renamed)
    is left out; any other damage raises RunError naming the file and the line."""
    path = Path(run_dir) / HISTORY_FILE
    if not os.path.lexists(path):
        return []
    rows = files.read_csv_numbers(path, RunError, "a CSV of per-epoch metrics written by kexp",
                                 drop_torn_last_line=True)
    if rows and "epoch" not in rows[0]:
        raise RunError(f"Cannot read '{path}': it has no `epoch` column (its columns: "
                       f"{', '.join(map(str, rows[0]))}). Expected a CSV of per-epoch metrics "
                       "written by kexp, with columns epoch, loss, accuracy, ...")
    previous = 0
    for line, row in enumerate(rows, start=2):
        epoch = row["epoch"]
        if not (epoch > previous and float(epoch).is_integer()):
            raise RunError(f"Cannot read '{path}': line {line} has epoch {epoch} after epoch "
                           f"{previous}. Expected whole epochs in rising order.")
        row["epoch"] = previous = int(epoch)
    return rows


# A snapshot label: group 1 the label, group 2 its epoch and group 3 its batch where it has them
# (epoch 1000 has four digits: the labels are zero-padded, not cut).
SNAPSHOT_ORDER = re.compile(rf"^({INITIAL}|{EPOCH_PREFIX}(\d{{3,}})(?:_batch_(\d{{5,}}))?|"
                            rf"{INTERRUPTED}|{FINAL})$")


def label_epoch(label: str) -> int:
    """The epoch in an epoch label: 'epoch_007' and 'epoch_007_batch_00010' -> 7."""
    return int(SNAPSHOT_ORDER.match(label).group(2))


def snapshot_sequence(run_dir: Path) -> list[tuple[str, Path]]:
    """The run's kernel snapshots in training order: initial, epoch_001_batch_..., epoch_001,
    ..., interrupted, final."""
    def order(stem: str):
        match = SNAPSHOT_ORDER.match(stem)
        if match.group(1) == INITIAL:
            return (0, 0, 0)
        if match.group(2):
            batch = int(match.group(3)) if match.group(3) else 10**9
            return (1, int(match.group(2)), batch)
        return (2 if match.group(1) == INTERRUPTED else 3, 0, 0)

    folder = Path(run_dir) / KERNELS_DIR
    found = [path for path in folder.glob(f"*{SNAPSHOT_SUFFIX}")
             if SNAPSHOT_ORDER.match(path.stem)]
    return [(path.stem, path) for path in sorted(found, key=lambda p: order(p.stem))]


def snapshot_path(run_dir: Path, label: str, argument: str = "label") -> Path:
    """The file of the run's snapshot `label` ("initial", "epoch_002", "final", ...); a label
    the run has no snapshot of raises RunError naming the ones it has (`argument`: the name
    the caller gave the label)."""
    sequence = dict(snapshot_sequence(run_dir))
    if label not in sequence:
        raise RunError(f"Invalid value for `{argument}`: {label!r}. Expected one of the snapshots "
                       f"of '{run_dir}': {', '.join(sequence) or 'none (it has no snapshots)'}.")
    return sequence[label]


def check_run_folders(run_dir: Path) -> None:
    """Refuse a run whose kernels/, checkpoint/, ... are no folders (resumes would fail)."""
    for name in (KERNELS_DIR, CHECKPOINT_DIR, FIGURES_DIR, VIEWS_DIR, TENSORBOARD_DIR):
        if problem := files.folder_problem(Path(run_dir) / name):
            raise RunError(f"Cannot resume '{run_dir}': '{Path(run_dir) / name}' {problem}. "
                           f"Expected the folder kexp wrote there: move that away and resume "
                           "again.")


def first_and_last_snapshots(run_dir: Path) -> tuple[tuple[str, Path], tuple[str, Path]]:
    """The run's initial snapshot and its newest one (label, path), which every before/after
    view compares; RunError for a run stopped before its first epoch ended."""
    sequence = snapshot_sequence(run_dir)
    labels = [label for label, _ in sequence]
    if len(sequence) < 2 or labels[0] != INITIAL:
        raise RunError(f"'{run_dir}' has no kernels before and after training (found in "
                       f"{KERNELS_DIR}/: {', '.join(labels) or 'none'}): it stopped before its "
                       "first snapshot or its first epoch. Expected a run with at least one "
                       f"epoch: resume it with: {shell_commands.resume_command(run_dir)}")
    return sequence[0], sequence[-1]


def run_of_process(runs_root: str | os.PathLike, pid: int) -> Path | None:
    """The newest run folder under `runs_root` whose status.json process `pid` on this host
    wrote last, or None: how a process that launched a training finds its run folder."""
    for run_dir in reversed(list_runs(runs_root)):
        status = read_status(run_dir)
        if status.get("pid") == pid and status.get("host") == socket.gethostname():
            return run_dir
    return None
