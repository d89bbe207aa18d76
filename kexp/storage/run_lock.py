"""One writer per run folder: the process that trains or resumes a run holds its lock file.

Two `--resume` of one run started a moment apart would otherwise both train it: history.csv
would get the same epochs twice and status.json say failed and finished at once. The lock is an
exclusive `flock` on `<run>/.lock`, which the kernel releases when its process ends, however it
ends: a lock file left by a killed process is free again and taken over, and nothing has to
guess from a pid whether its process still lives (a pid is reused by unrelated processes). The
file says who holds it, for the message. `is_held` is how a reader (kexp runs, --resume) tells
a live run from a crashed one.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import stat
from pathlib import Path

from kexp.errors import RunError

LOCK_FILE = ".lock"  # in the run folder, held by the one process writing the run


class RunLocked(RunError):
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
            raise RunError(f"Cannot lock '{path.parent}': {path} cannot be opened "
                                f"({error.strerror}). Expected a run folder kexp can write.")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RunError(f"Cannot lock '{path.parent}': {path} is not a regular file. "
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
    path = Path(run_dir) / LOCK_FILE
    fd = _open_locked(path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": _dt.datetime.now(_dt.timezone.utc).isoformat(
                                      timespec="seconds")}).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def is_held(run_dir: str | os.PathLike) -> bool | None:
    """Whether a process holds the run folder's lock now: the run is alive. None where this
    process cannot tell (the lock file cannot be opened, e.g. another user's run). The test
    takes a shared lock for an instant, released at once."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE,
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:  # a holder unlinks its file when it ends
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing releases the instant's shared lock
    return False


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (another user's counts): the guess a reader
    falls back on where `is_held` cannot tell, and how a Ray worker finds the folders of
    workers that are gone."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no pid is that large
        return False
    except PermissionError:
        return True
    return True
