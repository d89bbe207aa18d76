"""One writer per run folder: the process that trains or resumes a run holds its lock file.

Two `--resume` of one run started a moment apart would otherwise both train it: history.csv
would get the same epochs twice and status.json say failed and finished at once. The lock is an
exclusive `flock` on `<run>/.lock`, which the kernel releases when its process ends, however it
ends: a lock file left by a killed process is free again and taken over, and nothing has to
guess from a pid whether its process still lives. The file says who holds it, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from pathlib import Path

from kexp import runs


class RunLocked(runs.RunError):
    """Another process is writing the run folder."""


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says (best effort: it is being written)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {holder['pid']} on {holder['host']} (since {holder['since']})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


def _open_locked(path: Path) -> int:
    """A descriptor of `path` that holds its exclusive lock; the file is the one at `path` now
    (a holder that ends unlinks its file: a lock taken on that unlinked file would be none)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as error:
            raise runs.RunError(f"Cannot lock '{path.parent}': {path} cannot be opened "
                                f"({error.strerror}). Expected a run folder kexp can write.")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise runs.RunError(f"Cannot lock '{path.parent}': {path} is not a regular file. "
                                    "Expected a run folder kexp can write.")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLocked(f"Cannot write '{path.parent}': it is being written by "
                                f"{_holder(fd)}. Expected a run no other kexp process is "
                                "writing (a run folder has one writer): wait for it to end.")
            if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
                return fd
        except FileNotFoundError:
            pass  # unlinked by the holder that just ended: try the new file
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike):
    """Hold the run folder's lock for the block, or raise RunLocked naming its holder."""
    path = Path(run_dir) / runs.LOCK_FILE
    fd = _open_locked(path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": runs.now_iso()}).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
