"""Bad input to the command line: an unknown or out-of-range setting, data that is missing,
damaged or not digits, a RUN that is not a run folder, a runs folder that cannot be written. Each
ends with a non-zero exit and one message that names the bad value and the valid ones, and
leaves no run folder half-written."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np
import pytest

from kexp.storage import atomic, runs

from helpers import TINY_TRAIN_ARGS, kexp_in_process, run_kexp

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


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_with_one_clear_message_and_leaves_nothing(tmp_path, capsys, case):
    make_args, fragments = BAD_INPUTS[case]
    args = make_args(tmp_path)
    runs_dir = tmp_path / "runs"
    if "--runs-dir" not in args:
        args = [*args, "--runs-dir", str(runs_dir)]
    if args[0] == "train":
        args = [args[0], *TINY_TRAIN_ARGS, "--epochs", "1", *args[1:]]  # a later --data wins

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
        result = run_kexp("train", *TINY_TRAIN_ARGS, "--epochs", "1", "--runs-dir", str(runs_dir),
                          preexec_fn=without_permission_override if os.geteuid() == 0 else None)
    finally:
        runs_dir.chmod(0o755)
    assert result.returncode == 2
    assert "is not writable" in result.stderr and str(runs_dir) in result.stderr
    assert list(runs_dir.iterdir()) == []
