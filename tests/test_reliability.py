"""Reliability under bad input, Ctrl-C, a hard kill, concurrency, reruns and unsafe model files.

Each test drives the real command line (`python -m kexp ...` in a subprocess, as a user would) on
a few hundred real digits, and checks what the user relies on: a non-zero exit with one message
that names the bad value and the valid ones, and a run folder that is never left half-written.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kexp import shell_commands
from kexp.storage import atomic, files, runs

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = ["--data", "mnist-5k", "--train-samples", "256", "--test-samples", "128"]
# Enough epochs that a signal sent after the first one lands while training is still going on.
LONG_EPOCHS = "40"
SUBPROCESS_SECONDS = 300
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def kexp(*args: str, timeout: float = SUBPROCESS_SECONDS, preexec_fn=None
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kexp", *args], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


PR_CAPBSET_DROP = 24  # <linux/prctl.h>
CAP_DAC_OVERRIDE = 1  # <linux/capability.h>: write (and read) whatever the file modes say


def without_permission_override() -> None:
    """In a child of root (CI runs as root): take away the capability that lets root write
    where the file modes forbid it, so a read-only folder is read-only to the child as to any
    user. Dropped from the bounding set, it does not come back when the child execs Python;
    the child stays root and can read everything it did before."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE) failed")


def default_stop_signals() -> None:
    """In the child: the default disposition of the stop signals, whatever this test run
    inherited (a background job of a non-interactive shell starts with SIGINT ignored)."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def start_kexp(log_dir: Path, name: str, *args: str) -> subprocess.Popen:
    """Start `python -m kexp ...` in the background; output goes to files (a full pipe would
    block the child). The child gets the default signal dispositions, as from a terminal."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout = open(log_dir / f"{name}.out", "w")
    stderr = open(log_dir / f"{name}.err", "w")
    process = subprocess.Popen([sys.executable, "-m", "kexp", *args], cwd=REPO_ROOT, env=ENV,
                               stdout=stdout, stderr=stderr, preexec_fn=default_stop_signals)
    stdout.close()
    stderr.close()
    return process


def output_of(log_dir: Path, name: str) -> str:
    return (log_dir / f"{name}.out").read_text() + (log_dir / f"{name}.err").read_text()


def wait_for(predicate, process: subprocess.Popen, what: str, timeout: float = 180.0):
    """Poll `predicate` until it returns something truthy; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"kexp exited ({process.returncode}) before {what}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def only_run(runs_dir: Path) -> Path | None:
    found = [path for path in runs_dir.iterdir() if path.is_dir()] if runs_dir.is_dir() else []
    assert len(found) <= 1, found
    return found[0] if found else None


def history_rows(run_dir: Path) -> int:
    try:
        return len(runs.read_history(run_dir))
    except (OSError, ValueError):  # the header is being written
        return 0


def is_temporary(path: Path) -> bool:
    """An atomic writer's temporary sibling (.name.XXXX.tmp[.suffix]), left only by a hard kill."""
    return path.name.startswith(".") and ".tmp" in path.name


def assert_every_file_loads(run_dir: Path) -> list[str]:
    """Open every file of a run folder with the reader kexp uses for it; returns their names."""
    from kexp.network.saving import load_model

    loaded = []
    for path in sorted(run_dir.rglob("*")):
        if path.is_dir() or is_temporary(path) or path.name == runs.LOCK_FILE:
            continue  # the lock file of a killed process: the next writer takes it over
        if path.suffix == ".json":
            runs.read_json(path)
        elif path.suffix == ".npz" and path.parent.name == runs.KERNELS_DIR:
            arrays = runs.load_kernels(path)  # never unpickles
            assert all(array.dtype == np.float32 for array in arrays.values()), path
        elif path.suffix == ".npz":
            assert files.read_npz(path, runs.RunError), path  # a checkpoint
        elif path.suffix == ".keras":
            load_model(path)
        elif path.suffix == ".csv":
            runs.read_history(run_dir)
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG"), path
        else:
            pytest.fail(f"unexpected file in the run folder: {path}")
        loaded.append(str(path.relative_to(run_dir)))
    return loaded


# --- 1. Bad input --------------------------------------------------------------------------


def _write_idx(path: Path, magic: int, array: np.ndarray, cut_bytes: int = 0) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(raw[:len(raw) - cut_bytes] if cut_bytes else raw)


def _idx_folder(folder: Path, bad_magic: bool = False, truncated: bool = False) -> Path:
    from kexp.digits.data import IDX_FILES, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC

    folder.mkdir()
    rng = np.random.default_rng(0)
    for key, stem in IDX_FILES.items():
        count = 20 if key.endswith("train") else 10
        if key.startswith("x"):
            magic = 0x00000801 if bad_magic else IDX_IMAGES_MAGIC  # a label file's magic
            array = rng.integers(0, 256, (count, 28, 28))
        else:
            magic, array = IDX_LABELS_MAGIC, rng.integers(0, 10, count)
        _write_idx(folder / stem, magic, array, cut_bytes=100 if truncated and key == "x_train"
                   else 0)
    return folder


def _mnist_like_npz(path: Path, **overrides) -> Path:
    arrays = {"x_train": np.zeros((20, 28, 28), np.uint8), "y_train": np.zeros(20, np.int64),
              "x_test": np.zeros((10, 28, 28), np.uint8), "y_test": np.zeros(10, np.int64)}
    np.savez(path, **{**arrays, **overrides})
    return path


def _outside_run(tmp_path: Path) -> str:
    """A genuine-looking run folder beside (not inside) the runs directory."""
    outside = tmp_path / "outside"
    (outside / runs.KERNELS_DIR).mkdir(parents=True)
    atomic.write_json_atomic(outside / runs.CONFIG_FILE, {"config": {}})
    return "../outside"


BAD_INPUTS = {
    # id: (function of tmp_path -> extra CLI arguments, fragments the message must contain)
    "unknown initializer": (lambda tmp: ["train", "--init", "glorot_unifrom"],
                            ["'glorot_unifrom'", "Expected one of", "glorot_uniform"]),
    "initializer with a trailing space": (lambda tmp: ["train", "--init", "he_normal "],
                                          ["Expected one of", "he_normal"]),
    "negative stddev": (lambda tmp: ["train", "--init", "random_normal:stddev=-1"],
                        ["stddev", "'-1'", "positive number"]),
    "non-numeric parameter": (lambda tmp: ["train", "--init", "random_normal:stddev=abc"],
                              ["stddev", "'abc'", "positive number"]),
    "unknown parameter": (lambda tmp: ["train", "--init", "random_normal:foo=1"],
                          ["'foo=1'", "stddev"]),
    "parameter without value": (lambda tmp: ["train", "--init", "random_normal:stddev"],
                                ["'stddev'", "stddev=..."]),
    "zero epochs": (lambda tmp: ["train", "--epochs", "0"], ["`epochs`", "0", ">= 1"]),
    "negative epochs": (lambda tmp: ["train", "--epochs", "-3"], ["`epochs`", "-3", ">= 1"]),
    "epochs not a number": (lambda tmp: ["train", "--epochs", "abc"],
                            ["--epochs", "'abc'", "whole number"]),
    "fractional epochs": (lambda tmp: ["train", "--epochs", "1.5"],
                          ["--epochs", "'1.5'", "whole number"]),
    "zero batch size": (lambda tmp: ["train", "--batch-size", "0"],
                        ["`batch_size`", "0", ">= 1"]),
    "unknown model": (lambda tmp: ["train", "--model", "resnet50"],
                      ["'resnet50'", "mnist_cnn", "convnet"]),
    "missing data path": (lambda tmp: ["train", "--data", str(tmp / "nowhere.npz")],
                          ["nowhere.npz", "Expected one of", "mnist-5k"]),
    "corrupt npz": (lambda tmp: ["train", "--data", str(_random_file(tmp / "corrupt.npz"))],
                    ["corrupt.npz", "not a valid .npz", "mnist.npz"]),
    "truncated npz": (lambda tmp: ["train", "--data", str(_truncated_npz(tmp / "cut.npz"))],
                      ["cut.npz", "not a valid .npz"]),
    "npz with object arrays": (
        lambda tmp: ["train", "--data", str(_mnist_like_npz(
            tmp / "objects.npz", x_train=np.array([{"payload": 1}] * 20, dtype=object)))],
        ["objects.npz", "object arrays", "refused"]),
    "wrong image shape": (
        lambda tmp: ["train", "--data", str(_mnist_like_npz(
            tmp / "flat.npz", x_train=np.zeros((20, 784), np.uint8)))],
        ["flat.npz", "(20, 784)", "(N, 28, 28)"]),
    "labels out of range": (
        lambda tmp: ["train", "--data", str(_mnist_like_npz(
            tmp / "labels.npz", y_train=np.full(20, 10, np.int64)))],
        ["labels.npz", "10..10", "0..9"]),
    "IDX with a bad magic number": (
        lambda tmp: ["train", "--data", str(_idx_folder(tmp / "idx_magic", bad_magic=True))],
        ["train-images-idx3-ubyte", "bad magic number 0x00000801", "0x00000803"]),
    "truncated IDX": (
        lambda tmp: ["train", "--data", str(_idx_folder(tmp / "idx_cut", truncated=True))],
        ["train-images-idx3-ubyte", "truncated"]),
    # A run folder is accepted wherever it lives (and through a symlink): read, its damage named.
    "RUN outside the runs directory": (
        lambda tmp: ["visualize", str(tmp / Path(_outside_run(tmp)).name)],
        ["outside/config.json", "`data` is missing"]),
    "RUN absolute path elsewhere": (lambda tmp: ["visualize", "/etc"],
                                    ["'/etc'", "is not a run folder", "--runs-dir DIR"]),
    "RUN symlink out of the runs directory": (
        lambda tmp: ["visualize", _symlink_out(tmp)],
        ["outside/config.json", "`data` is missing"]),
    "resume outside the runs directory": (
        lambda tmp: ["train", "--resume", str(tmp / Path(_outside_run(tmp)).name)],
        ["outside/config.json", "`data` is missing"]),
    "RUN at nothing": (lambda tmp: ["visualize", "no-such-run"],
                       ["'no-such-run'", "not a run folder", "Expected a path to a run folder"]),
    "runs directory under a file": (
        lambda tmp: ["train", "--runs-dir", str(_regular_file(tmp / "a-file") / "runs")],
        ["a-file/runs", "Choose a writable folder with --runs-dir"]),
}


def _random_file(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return path


def _truncated_npz(path: Path) -> Path:
    _mnist_like_npz(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])
    return path


def _regular_file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


def _symlink_out(tmp_path: Path) -> str:
    _outside_run(tmp_path)
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / "escape").symlink_to(tmp_path / "outside")
    return "escape"


def assert_nothing_half_written(runs_dir: Path) -> None:
    """Either no run folder, or only ones whose status says failed, with the reason."""
    if not runs_dir.is_dir():
        return
    for path in runs_dir.iterdir():
        if path.is_symlink() or not path.is_dir():
            continue
        status = runs.read_json(path / runs.STATUS_FILE)
        assert status["status"] == runs.STATUS_FAILED and status.get("reason"), path


def kexp_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """`kexp ARGS` through kexp.cli.main in this process (what `python -m kexp` runs, without
    paying a TensorFlow start-up per case): exit code and output as a finished process's."""
    from kexp import cli

    try:
        code = cli.main(list(args))
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_with_one_clear_message_and_leaves_nothing(tmp_path, capsys, case):
    make_args, fragments = BAD_INPUTS[case]
    args = make_args(tmp_path)
    runs_dir = tmp_path / "runs"
    if "--runs-dir" not in args:
        args = [*args, "--runs-dir", str(runs_dir)]
    if args[0] == "train":
        args = [args[0], *TINY_DATA, "--epochs", "1", *args[1:]]  # a later --data wins

    result = kexp_in_process(capsys, *args)

    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, error_lines[0])
    assert_nothing_half_written(runs_dir)


def test_read_only_runs_directory_is_refused(tmp_path):
    """Also as root (CI): the child then runs without root's permission override."""
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    runs_dir.chmod(0o555)
    try:
        result = kexp("train", *TINY_DATA, "--epochs", "1", "--runs-dir", str(runs_dir),
                      preexec_fn=without_permission_override if os.geteuid() == 0 else None)
    finally:
        runs_dir.chmod(0o755)
    assert result.returncode == 2
    assert "is not writable" in result.stderr and str(runs_dir) in result.stderr
    assert list(runs_dir.iterdir()) == []


# --- 2. Interruption and resume ------------------------------------------------------------


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
SIGNAL_EPOCHS = "3"
SIGNAL_SETTINGS = [*TINY_DATA, "--epochs", SIGNAL_EPOCHS, "--deterministic", "--seed", "4"]
# `python -m kexp train ...` as a user runs it, with one extra Keras callback that holds the
# training after its first epoch until the test says go: the signal then always lands in the
# middle of the run, however loaded the machine is (a handshake, not a guessed delay).
PAUSED_TRAIN = """
import pathlib, sys, time
import keras
from kexp import cli
from kexp.training import trainer

paused, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

class HoldAfterTheFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            paused.write_text("paused")
            while not go.exists():
                time.sleep(0.01)

real_train = trainer.train
trainer.train = lambda config, **options: real_train(
    config, extra_callbacks=[HoldAfterTheFirstEpoch()], **options)
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def stop_signal_reference(tmp_path_factory):
    """One uninterrupted run of the stop-signal settings, shared by the three signals' tests;
    started at once, so it trains while the first of them does."""
    folder = tmp_path_factory.mktemp("stop-signal-reference")
    process = start_kexp(folder, "reference", "train", *SIGNAL_SETTINGS,
                         "--runs-dir", str(folder / "runs"))

    def final_kernels() -> dict:
        assert process.wait(timeout=SUBPROCESS_SECONDS) == 0, output_of(folder, "reference")
        return runs.load_kernels(only_run(folder / "runs") / runs.KERNELS_DIR / "final.npz")

    yield final_kernels
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", STOP_SIGNALS)
def test_stop_signal_leaves_an_interrupted_run_that_renders_and_resumes_bit_identically(
        tmp_path, stop_signal_reference, signal_name):
    """Ctrl-C, a scheduler's SIGTERM and a closed terminal's SIGHUP all end a run the same way:
    kernels of that moment, status `interrupted` naming the signal with a resume command, exit
    code 128+N; the resumed run ends with the kernels of an uninterrupted one (--deterministic)."""
    number = getattr(signal, signal_name)
    runs_dir = tmp_path / "signal runs"  # never the default `runs` of the child's folder
    paused, go = tmp_path / "paused", tmp_path / "go"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with open(log_dir / "train.out", "w") as stdout, open(log_dir / "train.err", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", PAUSED_TRAIN, str(paused), str(go), "train",
             *SIGNAL_SETTINGS, "--runs-dir", str(runs_dir)], cwd=tmp_path, env=ENV,
            stdout=stdout, stderr=stderr, preexec_fn=default_stop_signals)
    wait_for(paused.exists, process, "the end of the first epoch")
    run_dir = only_run(runs_dir)
    process.send_signal(number)
    go.touch()
    assert process.wait(timeout=120) == 128 + number, output_of(log_dir, "train")
    assert f"interrupted by {signal_name}" in output_of(log_dir, "train")

    status = runs.read_status(run_dir)
    completed = history_rows(run_dir)
    assert status["status"] == runs.STATUS_INTERRUPTED
    assert signal_name in status["reason"] and status["epochs_completed"] == completed
    assert status["resume"] == shell_commands.resume_command(run_dir)
    assert 1 <= completed < int(SIGNAL_EPOCHS)
    kernels = run_dir / runs.KERNELS_DIR
    for label in ("initial", f"epoch_{completed:03d}", "interrupted"):
        assert runs.load_kernels(kernels / f"{label}.npz")["conv1"].shape == (3, 3, 1, 32)
    assert not (kernels / "final.npz").exists()
    initial_bytes = (kernels / "initial.npz").read_bytes()

    drawn = kexp("visualize", run_dir.name, "--runs-dir", str(runs_dir))
    assert drawn.returncode == 0, drawn.stderr
    assert (run_dir / runs.FIGURES_DIR / "conv1_before_after.png").stat().st_size > 0

    resumed = start_kexp(tmp_path, "resume", "train", "--resume", str(run_dir),
                         "--runs-dir", str(runs_dir))
    assert resumed.wait(timeout=SUBPROCESS_SECONDS) == 0, output_of(tmp_path, "resume")

    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED
    assert "reason" not in status and status["pid"] == resumed.pid
    assert [row["epoch"] for row in runs.read_history(run_dir)] == \
        list(range(1, int(SIGNAL_EPOCHS) + 1))
    labels = [label for label, _ in runs.snapshot_sequence(run_dir)]
    assert labels == ["initial", *[f"epoch_{e:03d}" for e in range(1, int(SIGNAL_EPOCHS) + 1)],
                      "final"]  # the first attempt's interrupted.npz is kept out of it:
    assert (kernels / "interrupted_attempt_1.npz").is_file()
    assert (kernels / "initial.npz").read_bytes() == initial_bytes
    assert (run_dir / runs.MODEL_FILE).is_file()
    assert not (run_dir / "checkpoint").exists()

    uninterrupted = stop_signal_reference()
    final = runs.load_kernels(kernels / "final.npz")
    for layer in ("conv1", "conv2"):
        assert final[layer].tobytes() == uninterrupted[layer].tobytes(), layer


# --- 3. Hard kill --------------------------------------------------------------------------


KILL_SEED_VARIABLE = "KEXP_TEST_KILL_SEED"


@pytest.mark.slow
def test_sigkill_at_a_random_moment_leaves_only_loadable_files_and_a_crashed_run(tmp_path):
    """The moment is drawn from a seed that every failure message names; set the variable to
    that seed to replay the same moment."""
    seed = int(os.environ.get(KILL_SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    seconds_after_start = random.Random(seed).uniform(0.0, 4.0)
    runs_dir = tmp_path / "runs"
    process = start_kexp(tmp_path, "train", "train", *TINY_DATA, "--epochs", LONG_EPOCHS,
                         "--runs-dir", str(runs_dir))
    run_dir = wait_for(lambda: (lambda r: r if r and (r / runs.STATUS_FILE).exists() else None)(
        only_run(runs_dir)), process, "the run's status.json")
    time.sleep(seconds_after_start)
    epochs_seen = history_rows(run_dir)  # finished before the kill (more may finish meanwhile)
    process.kill()
    process.wait(timeout=60)
    context = (f"killed {seconds_after_start:.2f} s after status.json appeared, {epochs_seen} "
               f"epochs logged; replay with "
               f"{KILL_SEED_VARIABLE}={seed}")

    try:
        loaded = assert_every_file_loads(run_dir)
    except Exception as error:
        raise AssertionError(f"{context}: {error!r}") from error
    assert {"config.json", "status.json"} <= set(loaded), (context, loaded)
    assert runs.read_status(run_dir)["status"] == runs.STATUS_CRASHED, context
    listing = kexp("runs", "--runs-dir", str(runs_dir))
    assert listing.returncode == 0
    line = next(line for line in listing.stdout.splitlines() if run_dir.name in line)
    assert " crashed " in line, (context, listing.stdout)
    drawn = kexp("visualize", run_dir.name, "--runs-dir", str(runs_dir))  # drawn, or one line
    assert drawn.returncode in (0, 2) and "Traceback" not in drawn.stderr, (context, drawn.stderr)

    resumed = kexp("train", "--resume", run_dir.name, "--runs-dir", str(runs_dir))
    assert resumed.returncode == 0, (context, resumed.stderr[-2000:])
    # docs/run-folder.md: a SIGKILL loses at most the epoch in progress, or, killed within
    # milliseconds of an epoch's end, that epoch too: the resume starts at most one epoch before
    # those logged.
    resumed_after = re.search(r"(after epoch (\d+)|starts again from epoch 1)", resumed.stdout)
    assert resumed_after, (context, resumed.stdout)
    epochs_kept = int(resumed_after.group(2) or 0)
    assert epochs_kept >= epochs_seen - 1, (context, epochs_kept)
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    assert [row["epoch"] for row in runs.read_history(run_dir)] == \
        list(range(1, int(LONG_EPOCHS) + 1)), context


# --- 4. Concurrency ------------------------------------------------------------------------


@pytest.mark.slow
def test_four_trainings_at_once_make_four_complete_run_folders(tmp_path):
    runs_dir = tmp_path / "runs"
    processes = [start_kexp(tmp_path, f"train{index}", "train", *TINY_DATA, "--epochs", "1",
                            "--runs-dir", str(runs_dir)) for index in range(4)]
    for index, process in enumerate(processes):
        assert process.wait(timeout=SUBPROCESS_SECONDS) == 0, output_of(tmp_path, f"train{index}")

    run_dirs = sorted(path for path in runs_dir.iterdir() if path.is_dir())
    assert len(run_dirs) == 4
    assert {runs.read_status(path)["pid"] for path in run_dirs} == \
        {process.pid for process in processes}
    for run_dir in run_dirs:
        assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
        assert [row["epoch"] for row in runs.read_history(run_dir)] == [1]
        assert [label for label, _ in runs.snapshot_sequence(run_dir)] == \
            ["initial", "epoch_001", "final"]
        assert (run_dir / runs.MODEL_FILE).is_file()
        assert len(list((run_dir / runs.FIGURES_DIR).glob("*.png"))) >= 1
        assert not [path for path in run_dir.rglob("*") if is_temporary(path)]


# --- 5. Reproducibility --------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_repeats_initial_kernels_and_deterministic_repeats_final_ones(tmp_path):
    variants = {"default": [], "deterministic_a": ["--deterministic"],
                "deterministic_b": ["--deterministic"]}
    processes = {name: start_kexp(tmp_path, name, "train", *TINY_DATA, "--epochs", "2",
                                  "--seed", "7", *extra, "--runs-dir", str(tmp_path / name))
                 for name, extra in variants.items()}
    kernels = {}
    for name, process in processes.items():
        assert process.wait(timeout=SUBPROCESS_SECONDS) == 0, output_of(tmp_path, name)
        run_dir = only_run(tmp_path / name)
        kernels[name] = {label: runs.load_kernels(run_dir / runs.KERNELS_DIR / f"{label}.npz")
                         for label in ("initial", "final")}

    def identical(first: dict, second: dict) -> bool:
        return first.keys() == second.keys() and all(
            first[layer].tobytes() == second[layer].tobytes() for layer in first)

    assert identical(kernels["default"]["initial"], kernels["deterministic_a"]["initial"])
    assert identical(kernels["deterministic_a"]["initial"], kernels["deterministic_b"]["initial"])
    assert identical(kernels["deterministic_a"]["final"], kernels["deterministic_b"]["final"])
    assert not identical(kernels["deterministic_a"]["initial"], kernels["deterministic_a"]["final"])


# --- 6. Loading models ---------------------------------------------------------------------


def _lambda_model_file(path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.Lambda(lambda images: images * 2.0, name="double"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(path)
    return path


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    from kexp.network.saving import ModelLoadError, load_model

    path = _lambda_model_file(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match=r"Refused to load .*lambda\.keras.*`Lambda` layer"):
        load_model(path)
    with pytest.raises(ModelLoadError, match=r"Invalid value for `model`: .*Expected an existing"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"junk" * 100)
    with pytest.raises(ModelLoadError, match=r"not a \.keras zip archive"):
        load_model(tmp_path / "junk.keras")


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_with_a_lambda_layer(tmp_path):
    """The user-facing loading path: `kexp train --resume` on a run whose checkpoint was
    replaced by a model that would run Python code when loaded."""
    from kexp.config import TrainConfig
    from kexp.digits.inputs import prepare_data

    runs_dir = tmp_path / "runs"
    config = TrainConfig(data="mnist-5k", train_samples=256, test_samples=128, epochs=2,
                         runs_dir=str(runs_dir))
    _, data_summary = prepare_data(config)
    run_dir = runs.create_run_dir(runs_dir, "planted")
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE,
                           {"config": config.to_dict(), "data": data_summary})
    runs.write_status(run_dir, runs.STATUS_INTERRUPTED, reason="interrupted (Ctrl-C / SIGINT)")
    (run_dir / runs.HISTORY_FILE).write_text("epoch,seconds,loss\n1,1.0,2.3\n")  # epoch 1 done
    (run_dir / runs.CHECKPOINT_DIR).mkdir()
    _lambda_model_file(run_dir / runs.CHECKPOINT_DIR / "epoch_001.keras")

    result = kexp("train", "--resume", run_dir.name, "--runs-dir", str(runs_dir))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Refused to load" in result.stderr and "`Lambda` layer" in result.stderr
    assert "safe_mode=False" not in result.stderr
    assert runs.read_status(run_dir)["status"] == runs.STATUS_INTERRUPTED
    assert (run_dir / runs.HISTORY_FILE).read_text() == "epoch,seconds,loss\n1,1.0,2.3\n"


def test_kexp_never_turns_keras_safe_mode_off():
    sources = sorted((REPO_ROOT / "kexp").rglob("*.py"))  # subpackages included
    assert REPO_ROOT / "kexp" / "experiments" / "compare" / "ray_worker.py" in sources
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert "safe_mode=False" not in text and "enable_unsafe_deserialization" not in text, \
            source


def test_kernel_snapshots_leave_keras_batch_hooks_asynchronous(tmp_path):
    """A callback that overrides a batch hook makes Keras sync every step unless it is
    async-safe; per-epoch snapshots must not cost that."""
    from kexp.training.callbacks import KernelSnapshots

    assert KernelSnapshots(tmp_path).async_safe
    assert not KernelSnapshots(tmp_path, every_batches=5).async_safe
