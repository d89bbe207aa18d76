"""Stop signals inside `fit` are raised between steps, never inside TensorFlow's C++ code:
within `deferred()` a signal is only recorded, `raise_if_requested()` raises it once, and a
second signal is ignored. (A SIGTERM raised from the handler during a compiled call once ended a
run with a SystemError instead of an interrupted run.)"""

from __future__ import annotations

import os
import signal

import pytest

from kexp.training import stop_signals


@pytest.fixture
def default_sigterm():
    """The test's own process gets SIGTERM: make its disposition the default one first, however
    the test run was started."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_outside_deferred_a_signal_raises_at_once_and_a_second_is_ignored(default_sigterm):
    with stop_signals.stop_on_signals():
        with pytest.raises(stop_signals.StopRequested) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a Python step: the handler runs
        assert stopped.value.signal_number == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # during the cleanup: ignored
        stop_signals.raise_if_requested()  # nothing left to raise


def test_inside_deferred_a_signal_waits_for_a_safe_point_and_is_raised_once(default_sigterm):
    with stop_signals.stop_on_signals():
        with stop_signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(1000))  # Python steps: the handler ran, and raised nothing
            with pytest.raises(stop_signals.StopRequested) as stopped:
                stop_signals.raise_if_requested()  # the safe point
            assert stopped.value.signal_number == signal.SIGTERM
            stop_signals.raise_if_requested()  # once only: the second signal was ignored
        # the block ends normally: the signal was already raised


def test_a_signal_deferred_to_the_end_of_the_block_is_raised_there(default_sigterm):
    with stop_signals.stop_on_signals():
        with pytest.raises(stop_signals.StopRequested):
            with stop_signals.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(1000))
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # still kexp's handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored afterwards
