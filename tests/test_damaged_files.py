"""Damaged files: every file kexp reads back goes through one reader per format, so a truncated,
garbage, empty or wrong file, or a directory in its place, ends a command with one message that
names the file (exit 2), never a traceback; `kexp runs` reports such a run and lists the others.
Writes refuse to replace what is not a regular file, and every file of a run gets one mode."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kexp import cli
from kexp.digits import data
from kexp.digits.data import DataError
from kexp.storage import atomic, runs

# A file of the interrupted run -> the commands that read it (the others must not care).
READERS = {
    "config.json": {"visualize", "animate", "runs", "resume"},
    "status.json": {"visualize", "runs", "resume"},
    "history.csv": {"visualize", "animate", "resume"},
    "kernels/initial.npz": {"visualize", "animate", "resume"},
    "kernels/epoch_001.npz": {"animate", "resume"},
    "kernels/interrupted.npz": {"visualize", "animate", "resume"},
    "checkpoint/epoch_001.npz": {"resume"},
}


def wrong_kind(path: Path) -> None:
    """A sound file of the right format with contents kexp cannot use."""
    if path.suffix == ".json":
        path.write_text('{"status": 3, "config": ["epochs"], "data": null}')
    elif path.suffix == ".csv":
        path.write_text("epoch,loss\nfirst,high\n")
    else:
        np.savez(path, conv1=np.zeros((3, 3), np.float32))


def directory_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:path.stat().st_size // 2]),
    "garbage": lambda path: path.write_bytes(
        np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes()),
    "empty": lambda path: path.write_bytes(b""),
    "wrong kind": wrong_kind,
    "directory": directory_instead,
}


# Damages a crash can also leave, which drawing accepts, with who still refuses them. An empty
# history.csv is what a crash before the first row leaves (the file is opened, then written):
# it reads as no epochs. A history.csv cut mid-row reads without its torn last row (a hard kill
# mid-append leaves one). Resume refuses both here: the run's checkpoint is after epoch 1, and
# a row is written before its epoch's checkpoint, so rows missing below it mean damage.
SOUND_DAMAGES = {("history.csv", "empty"): {"resume"}, ("history.csv", "truncated"): {"resume"}}


def run_command(command: str, run_dir: Path, capsys) -> tuple[int, str, str]:
    args = {"visualize": ["visualize", str(run_dir)], "animate": ["animate", str(run_dir)],
            "runs": ["runs"], "resume": ["train", "--resume", str(run_dir)]}[command]
    code = cli.main([*args, "--runs-dir", str(run_dir.parent)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("name", list(READERS))
def test_a_damaged_run_file_gives_one_message_naming_it(interrupted_run, tmp_path, capsys,
                                                        name, damage):
    runs_dir = tmp_path / "runs"
    good = shutil.copytree(interrupted_run, runs_dir / "0-good")
    run_dir = shutil.copytree(interrupted_run, runs_dir / interrupted_run.name)
    DAMAGES[damage](run_dir / name)
    readers = SOUND_DAMAGES.get((name, damage), READERS[name])

    for command in ("visualize", "animate", "runs", "resume"):
        code, out, err = run_command(command, run_dir, capsys)
        case = f"{command} with {damage} {name}: {out}{err}"
        assert "Traceback" not in out + err, case
        if command == "runs":
            assert code == 0, case
            assert f"{good.name} " in out and " interrupted " in out, case
            line = next(line for line in out.splitlines() if line.startswith(run_dir.name))
            assert (" unreadable " in line and Path(name).name in line) == (
                command in readers), case
        elif command in readers:
            errors = [line for line in err.splitlines() if line.strip()]
            assert code == 2 and len(errors) == 1, case
            assert ": error: " in errors[0] and Path(name).name in errors[0], case
        else:
            assert code == 0, case
    assert runs.read_status(good)["status"] == runs.STATUS_INTERRUPTED


@pytest.mark.parametrize("name, change, listed", [
    ("status.json", {"status": "running", "pid": 2**70}, "`pid` is 1180591620717411303424"),
    ("status.json", {"status": "finished", "test_accuracy": "high"}, "`test_accuracy` is 'high'"),
    ("status.json", {"status": "done"}, "`status` is 'done'. Expected one of: running"),
    ("status.json", {"status": "finished", "epochs_completed": -1}, "`epochs_completed` is -1"),
    ("config.json", {"config": {"freeze": 5}}, "its settings are invalid"),
    ("config.json", {"config": {"seed": "abc"}}, "Invalid value for `seed`: 'abc'"),
    ("config.json", {"config": {"init": "glorot_unifrom"}}, "'glorot_unifrom'"),
    ("config.json", {"data": {"source": 7}}, "`source` is 7"),
])
def test_fields_of_the_wrong_kind_are_reported_by_name(interrupted_run, tmp_path, capsys, name,
                                                       change, listed):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "runs" / interrupted_run.name)
    recorded = runs.read_json(run_dir / name)
    for key, value in change.items():
        recorded[key] = {**recorded[key], **value} if isinstance(value, dict) else value
    atomic.write_json_atomic(run_dir / name, recorded)
    code, out, err = run_command("runs", run_dir, capsys)
    assert code == 0 and listed in out, out + err
    code, out, err = run_command("visualize", run_dir, capsys)
    assert "Traceback" not in err and (code == 0 if "crashed" in listed else listed in err), err


def _idx_header(magic: int, dims: list[int]) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def _npz_claiming(path: Path, shape: tuple) -> Path:
    """An npz whose array header claims `shape` float64 but holds 80 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + bytes(80))
    return path


def _empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


USER_DATA = {
    # case -> (function of a folder -> the --data path, fragments of the message)
    "IDX header sizes past 2**64": (
        lambda tmp: _idx_with(tmp, _idx_header(data.IDX_IMAGES_MAGIC, [2**32 - 1] * 3)),
        ["train-images-idx3-ubyte", "promises 79228162458924105385300197375", "truncated"]),
    "gzipped IDX promising more than it can hold": (
        lambda tmp: _idx_with(tmp, gzip.compress(_idx_header(data.IDX_IMAGES_MAGIC,
                                                             [60000, 28, 28])), ".gz"),
        ["promises 47040000 data bytes", "truncated"]),
    "npz array header claiming 730 GiB": (
        lambda tmp: _npz_claiming(tmp / "huge.npz", (10000, 100000, 98)),
        ["huge.npz", "promises (10000, 100000, 98) float64", "but it holds 80 bytes"]),
    "npz holding a text file": (
        lambda tmp: _zip_with_text(tmp / "notes.npz"), ["notes.npz", "'readme.txt' is not"]),
    "empty npz archive": (lambda tmp: _zip_with_text(tmp / "none.npz", {}),
                          ["none.npz", "holds no arrays"]),
    "empty file": (lambda tmp: _empty_file(tmp / "empty.npz"), ["empty.npz", "it is empty"]),
}


def _idx_with(folder: Path, images: bytes, suffix: str = "") -> Path:
    folder = folder / "idx"
    folder.mkdir()
    for key, stem in data.IDX_FILES.items():
        payload = (images if key == "x_train" else
                   _idx_header(data.IDX_IMAGES_MAGIC, [1, 28, 28]) + bytes(784)
                   if key.startswith("x") else _idx_header(data.IDX_LABELS_MAGIC, [1]) + b"\0")
        (folder / (stem + (suffix if key == "x_train" else ""))).write_bytes(payload)
    return folder


def _zip_with_text(path: Path, members: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in ({"readme.txt": "hello"} if members is None else members).items():
            archive.writestr(name, text)
    return path


@pytest.mark.parametrize("case", list(USER_DATA))
def test_damaged_user_data_is_refused_before_anything_is_allocated(tmp_path, case):
    make, fragments = USER_DATA[case]
    with pytest.raises(DataError) as refused:
        data.load(str(make(tmp_path)))
    for fragment in fragments:
        assert fragment in str(refused.value), str(refused.value)


def _socket_at(path: Path) -> Path:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


def _device_at(path: Path) -> Path:
    """A node of the device /dev/full has (never /dev/full itself: a writer that got this wrong
    would replace the machine's device)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


NOT_REGULAR = {
    "a device": lambda tmp: _device_at(tmp / "full.gif"),
    "a directory": lambda tmp: (tmp / "folder.gif").mkdir() or tmp / "folder.gif",
    "a FIFO": lambda tmp: os.mkfifo(tmp / "pipe.gif") or tmp / "pipe.gif",
    "a socket": lambda tmp: _socket_at(tmp / "socket.gif"),
    "a symlink to a device": lambda tmp: (tmp / "link.gif").symlink_to("/dev/null")
    or tmp / "link.gif",
}


@pytest.mark.parametrize("case", list(NOT_REGULAR))
def test_writes_refuse_to_replace_what_is_not_a_regular_file(interrupted_run, tmp_path, capsys,
                                                             case):
    target = NOT_REGULAR[case](tmp_path)
    kind = stat.S_IFMT(os.lstat(target).st_mode)
    for write in (lambda: atomic.write_bytes_atomic(target, b"data"),
                  lambda: atomic.write_path_atomic(target, lambda temporary:
                                                 temporary.write_bytes(b"data"))):
        with pytest.raises(runs.RunError, match="it is (a directory|not a regular file)"):
            write()
    code = cli.main(["animate", str(interrupted_run), "--runs-dir", str(interrupted_run.parent),
                     "--output", str(target)])
    assert code == 2 and f"Cannot write '{target}'" in capsys.readouterr().err
    assert stat.S_IFMT(os.lstat(target).st_mode) == kind
    assert not [path for path in tmp_path.iterdir() if ".tmp" in path.name]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_file_of_a_run_gets_the_mode_the_umask_gives(tmp_path, umask):
    from kexp.training.callbacks import EpochLog

    previous = os.umask(umask)
    try:
        written = [atomic.write_json_atomic(tmp_path / "status.json", {"status": "running"}),
                   atomic.write_npz_atomic(tmp_path / "initial.npz", {"conv1": np.zeros(1)}),
                   atomic.write_path_atomic(tmp_path / "figure.png",
                                          lambda temporary: temporary.write_bytes(b"png"))]
        log = EpochLog(tmp_path / "history.csv")
        log.on_epoch_begin(0)
        log.on_epoch_end(0, {"loss": 1.0})
        log.on_train_end()  # the row is appended by a background thread; fit ends waiting for it
        written.append(log.path)
    finally:
        os.umask(previous)
    assert {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == \
        dict.fromkeys(["status.json", "initial.npz", "figure.png", "history.csv"],
                      oct(0o666 & ~umask))


def test_a_real_run_has_one_file_mode(interrupted_run):
    modes = {path.relative_to(interrupted_run).as_posix(): oct(stat.S_IMODE(path.stat().st_mode))
             for path in interrupted_run.rglob("*") if path.is_file()}
    assert len(set(modes.values())) == 1, modes
