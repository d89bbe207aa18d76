"""Turn the signals that stop a job (SIGTERM, SIGHUP, SIGINT) into one exception a run can handle.

Schedulers stop jobs with SIGTERM and a grace period (Slurm, Kubernetes, `docker stop`,
`timeout`); a closed terminal sends SIGHUP; Ctrl-C sends SIGINT. Python's default for those
two kills the process with no cleanup: a run would stay "running", with no kernels of that moment.
Inside `stop_on_signals()` each of them raises `StopRequested` in the main thread (between two
Python steps, so within one training batch); the run then saves what it has and records why.
A second signal while that cleanup runs is ignored, so the record is not cut in half.
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


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGTERM/SIGHUP/SIGINT raise StopRequested once, then are ignored until
    the block ends; the previous handlers come back afterwards. A signal the process started
    with ignored (SIGINT in a background job, SIGHUP under nohup) stays ignored: that was asked
    for. Outside the main thread (where Python cannot set handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def request_stop(signal_number, frame):
        nonlocal raised
        if not raised:
            raised = True
            raise StopRequested(signal_number)

    previous = {}
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, request_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
