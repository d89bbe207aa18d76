"""The per-epoch files are written by a background thread (issue 12): in the order they were
handed over, a failure cancelling what comes after it until it is reported, a bounded queue, and
nothing lost when the script ends; what the training thread reads stays as it was read while
training goes on."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from kexp.storage.background_writes import OrderedWriter

from helpers import run_python


def test_writes_land_in_the_order_they_were_handed_over():
    writer, landed = OrderedWriter(), []
    for index in range(50):
        writer.submit(lambda index=index: (time.sleep(0.001 * (index % 3)), landed.append(index)))
    writer.wait()
    assert landed == list(range(50))


def test_a_failed_write_cancels_the_later_ones_until_wait_reports_it():
    writer, landed = OrderedWriter(), []
    release = threading.Event()

    def fail():
        release.wait(10)
        raise OSError(28, "No space left on device")

    writer.submit(lambda: landed.append("snapshot"))
    writer.submit(fail)
    writer.submit(lambda: landed.append("checkpoint"))  # queued behind the failure
    release.set()
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    assert landed == ["snapshot"]  # the checkpoint never lands without what came before it
    writer.submit(lambda: landed.append("after the report"))
    writer.wait()
    assert landed == ["snapshot", "after the report"]


def test_submit_raises_an_earlier_failure_instead_of_queueing_more():
    writer = OrderedWriter()
    writer.submit(lambda: 1 / 0)
    deadline = time.monotonic() + 10
    with pytest.raises(ZeroDivisionError):
        while time.monotonic() < deadline:
            writer.submit(lambda: pytest.fail("a write after a failure ran"))
            time.sleep(0.01)
    with pytest.raises(ZeroDivisionError):
        writer.wait()


def test_a_slow_disk_makes_submit_wait_rather_than_pile_up_writes():
    writer, release = OrderedWriter(max_pending=2), threading.Event()
    writer.submit(lambda: release.wait(10))  # the one being written
    writer.submit(lambda: None)
    writer.submit(lambda: None)  # two wait: the queue is full
    submitting = threading.Event()

    def submit_a_third():
        submitting.set()
        writer.submit(lambda: None)

    blocked = threading.Thread(target=submit_a_third)
    blocked.start()
    assert submitting.wait(10)  # the thread has started and is inside submit (or about to be)
    blocked.join(0.5)
    assert blocked.is_alive(), "a third pending write was accepted"
    release.set()
    blocked.join(10)
    assert not blocked.is_alive()
    writer.wait()


def test_a_script_that_ends_still_lands_what_it_handed_over(tmp_path):
    target = tmp_path / "row.txt"
    script = ("import sys, time\n"
              "from kexp.storage.background_writes import OrderedWriter\n"
              "writer = OrderedWriter()\n"
              f"writer.submit(lambda: (time.sleep(0.5), open({str(target)!r}, 'w').write('row')))\n"
              "raise KeyboardInterrupt  # a Ctrl-C right after the epoch\n")
    result = run_python(script, timeout=60)
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    assert target.read_text() == "row"


@pytest.mark.slow
def test_what_the_training_thread_read_keeps_its_values_while_training_goes_on():
    import keras

    from kexp.network.models import build_model
    from kexp.training.callbacks import VariableReader
    from kexp.training.checkpoint import state_variables

    model = build_model("convnet", seed=0)
    images = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    labels = np.arange(64) % 10
    model.fit(images, labels, epochs=1, batch_size=32, verbose=0)
    variables = state_variables(model)
    before = {name: keras.ops.convert_to_numpy(variable) for name, variable in variables.items()}
    read = VariableReader().by_name(variables)
    model.fit(images, labels, epochs=1, batch_size=32, verbose=0)  # updates every variable
    changed = [name for name, variable in variables.items()
               if not np.array_equal(keras.ops.convert_to_numpy(variable), before[name])]
    assert "optimizer_0000" in changed and len(changed) > len(variables) // 2
    for name, tensor in read.items():
        np.testing.assert_array_equal(np.asarray(tensor), before[name], err_msg=name)
