"""Every file kexp writes lands whole or not at all, and a full disk says so.

A write goes to a temporary sibling in the same folder, is flushed to disk (fsync) and renamed
into place (Keras' own saves open, truncate and write in place), so a crash or a full disk never
leaves a half file where a good one was. Each file gets the mode the umask gives any new file, a
target that is not a regular file (a device, a folder) is refused rather than replaced, and a
disk or quota that fills mid-write raises DiskFull naming the file, not a bare OSError.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from kexp.errors import RunError
from kexp.storage import files

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(RunError):
    """The disk (or quota) filled while kexp wrote a file; every file written before is intact."""


@contextlib.contextmanager
def reporting_disk_full(path: Path):
    """Turn a full disk while writing `path` into DiskFull naming the file and the free space."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_FULL_ERRNOS:
            raise
        try:
            free = f"{shutil.disk_usage(Path(path).parent).free:,} bytes free"
        except OSError:
            free = "free space unknown"
        raise DiskFull(f"The disk is full: could not write '{path}' ({free} in "
                       f"'{Path(path).parent}'). Every file written before it is intact; free "
                       "some space, then resume the run.") from None


def _write_atomic(path: Path, write) -> Path:
    """Write through `write(file_object)` to a temporary sibling, fsync, then rename into place.
    The file gets the mode any other file of the run gets (mkstemp alone would make it 0600)."""
    path = files.check_replaceable(Path(path), RunError)
    with reporting_disk_full(path):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), files.file_mode())
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
    return path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return _write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: Path, payload: dict) -> Path:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_bytes_atomic(path, text.encode())


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def temporary_sibling(path: Path) -> Path:
    """A fresh temporary name beside `path` with the same suffix, for writers that need a path
    (Keras' model.save checks the extension); the caller renames it into place with os.replace."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def write_path_atomic(path: Path, save) -> Path:
    """For writers that take a file name (Keras' model.save, matplotlib's savefig): `save` writes
    a temporary sibling with the same suffix, which is fsynced and renamed into place like every
    other file of a run; no temporary is left behind when `save` fails."""
    path = files.check_replaceable(Path(path), RunError)
    temporary = temporary_sibling(path)
    with reporting_disk_full(path):
        try:
            save(temporary)
            with open(temporary, "rb+") as handle:
                os.fchmod(handle.fileno(), files.file_mode())
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            if temporary.exists():
                temporary.unlink()
    return path
