"""One thread that writes a run's per-epoch files, in the order they were handed over, while the
next epoch trains.

A kernel snapshot, a history row and the resume checkpoint each end in an fsync; in the training
thread those milliseconds were time every epoch waited (issue 12). The training thread now reads
what it needs (that read is its only cost) and hands the write over; this thread runs the writes
one at a time, first in first out, so the files land in the same order as before: an epoch's
snapshot, then its history row, then its checkpoint, which is therefore never ahead of the
history. The first write that fails cancels every write after it until `wait()` has reported it
(a later file must not land without an earlier one); the training thread sees the error at its
next `submit` or `wait`.

The thread runs only while writes are pending and is not a daemon: a script that ends, or that
a Ctrl-C ends, still lands what it had handed over before the interpreter exits.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

MAX_PENDING_WRITES = 8  # about two epochs of writes; beyond that the training thread waits


class OrderedWriter:
    """Runs `submit`ted writes in a background thread, in order. `wait()` returns once every
    write handed over has landed, or raises the first failure. At most `max_pending` writes wait
    at a time: a disk slower than training makes `submit` wait instead of piling up copies."""

    def __init__(self, max_pending: int = MAX_PENDING_WRITES):
        self.max_pending = max_pending
        self._pending: collections.deque[Callable[[], object]] = collections.deque()
        self._running = False  # a thread is working through _pending
        self._changed = threading.Condition()
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], object]) -> None:
        """Queue `write()` after the writes already handed over. Once a write has failed, raises
        its error instead, until `wait()` has reported it."""
        with self._changed:
            if self._error is not None:
                raise self._error
            while len(self._pending) >= self.max_pending:
                self._changed.wait()
            self._pending.append(write)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="kexp-writer").start()

    def wait(self) -> None:
        """Block until every write handed over has landed (or was cancelled by a failure), then
        raise the failure, if there was one; later writes run again after that."""
        with self._changed:
            while self._running:
                self._changed.wait()
            if self._error is not None:
                error, self._error = self._error, None
                raise error

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._pending:
                    self._running = False
                    self._changed.notify_all()
                    return
                write = self._pending.popleft()
                cancelled = self._error is not None
                self._changed.notify_all()  # a submit waiting for room may go on
            if cancelled:
                continue
            try:
                write()
            except BaseException as error:  # raised in the training thread by submit or wait
                with self._changed:
                    self._error = error
