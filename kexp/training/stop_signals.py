"""Turn the signals that stop a job (SIGTERM, SIGHUP, SIGINT) into one exception a run can handle.

Schedulers stop jobs with SIGTERM and a grace period (Slurm, Kubernetes, `docker stop`,
`timeout`); a closed terminal sends SIGHUP; Ctrl-C sends SIGINT. Python's default for those
two kills the process with no cleanup: a run would stay "running", with no kernels of that moment.
Inside `stop_on_signals()` each of them raises `StopRequested` in the main thread (between two
Python steps); the run then saves what it has and records why. A second signal while that
cleanup runs is ignored, so the record is not cut in half.

Inside `deferred()` (around `model.fit`) a signal is only recorded, and `raise_if_requested()`
raises it at a safe point (kexp's StopWhenRequested callback: the start of the next batch). An
exception raised from a signal handler lands wherever Python next checks for signals, which
can be inside TensorFlow's C++ code while it builds a result: measured, a SIGTERM during a
compiled call at the end of an epoch ended the run with "SystemError: Objects/listobject.c:338:
bad argument to internal function" instead of an interrupted run.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT")
                     if hasattr(signal, name))


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; `signal_number` says which (exit code 128 + it, by convention)."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name


def signal_of(interruption: KeyboardInterrupt) -> int:
    """The signal behind an interruption: its own, or SIGINT for a plain KeyboardInterrupt."""
    return getattr(interruption, "signal_number", signal.SIGINT)


class _Stop:
    """The state of one `stop_on_signals` block: the signal received, whether StopRequested
    was raised for it, and how many `deferred` blocks are open."""

    def __init__(self):
        self.signal_number: int | None = None
        self.raised = False
        self.deferring = 0


_active: _Stop | None = None  # the innermost stop_on_signals block (the main thread's)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGTERM/SIGHUP/SIGINT raise StopRequested once (inside `deferred()`,
    at the next `raise_if_requested()`), then are ignored until the block ends; the previous
    handlers come back afterwards. A signal the process started with ignored (SIGINT in a
    background job, SIGHUP under nohup) stays ignored: that was asked for. Outside the main
    thread (where Python cannot set handlers) this does nothing, and a block inside another
    one is that block: one signal is raised once, and the later ones ignored, until the
    outermost block ends."""
    global _active
    if threading.current_thread() is not threading.main_thread() or _active is not None:
        yield
        return
    stop, enclosing = _Stop(), _active

    def request_stop(signal_number, frame):
        if stop.signal_number is None:
            stop.signal_number = signal_number
            if not stop.deferring:
                stop.raised = True
                raise StopRequested(signal_number)

    previous = {}
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, request_stop)
    _active = stop
    try:
        yield
    finally:
        _active = enclosing
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def deferred():
    """Within the block, a stop signal is recorded, not raised; it is raised by the next
    `raise_if_requested()`, or when the block ends normally. Outside `stop_on_signals()` this
    does nothing."""
    stop = _active
    if stop is None:
        yield
        return
    stop.deferring += 1
    try:
        yield
    finally:
        stop.deferring -= 1
    raise_if_requested()


def raise_if_requested() -> None:
    """Raise StopRequested for a signal that `deferred()` recorded and nothing raised yet."""
    stop = _active
    if stop is not None and stop.signal_number is not None and not stop.raised:
        stop.raised = True
        raise StopRequested(stop.signal_number)
