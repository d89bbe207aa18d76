"""A disk that fills during a run: whatever file was being written (a kernel snapshot, the resume
checkpoint, a history row, the model, a figure), the run ends `failed` with a message that says
the disk is full, which file and how many bytes are free in its folder, every file written before
is intact and loadable, and once there is space again the run resumes from its last checkpoint
and finishes.

The full disk is injected at the write itself: `os.fsync` of the file named by the case raises
ENOSPC, as it does on a full filesystem (the data is only known to fit when it reaches the disk).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import pytest

from kexp.config import TrainConfig
from kexp.storage import atomic, runs

from helpers import TINY_TRAINING, assert_every_file_loads

pytestmark = pytest.mark.slow

EPOCHS = 3
# A case: the pattern of the file (as /proc names the open file) whose fsync finds the disk full,
# and the file of the run that it was to become (what the message must name).
CASES = {
    "kernel snapshot": (r"/kernels/\.epoch_002\.npz\.", "kernels/epoch_002.npz"),
    "resume checkpoint": (r"/checkpoint/\.epoch_002\.npz\.", "checkpoint/epoch_002.npz"),
    "history row": (r"/history\.csv$", "history.csv"),
    "model": (r"/\.model\.[0-9a-f]+\.tmp\.keras$", "model.keras"),
    # written on a thread while the figures are drawn (kexp.training.optimal_inputs_thread)
    "optimal inputs": (r"/views/\.optimal_inputs\.", "views/optimal_inputs.npz"),
    "figure": (r"/figures/\.conv1_before_after\.", "figures/conv1_before_after.png"),
}
# atomic.reporting_disk_full's message: the file, then the free space of its folder.
DISK_FULL_MESSAGE = re.compile(r"^The disk is full: could not write '(?P<file>[^']+)' "
                               r"\((?P<free>[\d,]+) bytes free in '(?P<folder>[^']+)'\)\. ")


@pytest.fixture
def fill_disk_at(monkeypatch):
    """Make the fsync of the first file matching a pattern fail with ENOSPC (the history case:
    its second row). Returns the list of paths it refused."""
    real_fsync = os.fsync
    refused: list[str] = []

    def install(pattern: str, skip: int = 0):
        seen = {"count": 0}

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            if not refused and re.search(pattern, path):
                seen["count"] += 1
                if seen["count"] > skip:
                    refused.append(path)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        return refused

    yield install
    monkeypatch.setattr(os, "fsync", real_fsync)


@pytest.mark.parametrize("case", list(CASES))
def test_a_full_disk_fails_the_run_naming_the_file_and_it_resumes_afterwards(
        tmp_path, fill_disk_at, case):
    from kexp.training.trainer import resume, train

    # The figures (and the page) are drawn only where the case is a figure: no other case reads
    # them, and they are drawn after every file the other cases fill.
    config = TrainConfig(**TINY_TRAINING, batch_size=64, epochs=EPOCHS, seed=2,
                         figures=case == "figure", runs_dir=str(tmp_path / "runs"))
    pattern, target = CASES[case]
    refused = fill_disk_at(pattern, skip=1 if case == "history row" else 0)
    with pytest.raises(atomic.DiskFull) as full:
        train(config, verbose=0)
    assert refused, "the injected full disk was never reached"

    (run_dir,) = runs.list_runs(tmp_path / "runs")
    said = DISK_FULL_MESSAGE.match(str(full.value))
    assert said, str(full.value)
    assert Path(said["file"]) == run_dir / target
    assert Path(said["folder"]) == (run_dir / target).parent == Path(refused[0]).parent
    free_now = shutil.disk_usage(said["folder"]).free  # others write too: within 1%
    assert int(said["free"].replace(",", "")) == pytest.approx(free_now, rel=0.01)
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FAILED
    assert status["reason"] == f"DiskFull: {full.value}"
    assert_every_file_loads(run_dir)
    assert runs.load_kernels(run_dir / runs.KERNELS_DIR / "epoch_001.npz")["conv1"].shape == \
        (3, 3, 1, 32)

    fill_disk_at(r"(?!)")  # space again: no file is refused any more
    resume(run_dir, verbose=0)
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED, status
    assert [row["epoch"] for row in runs.read_history(run_dir)] == list(range(1, EPOCHS + 1))
    assert (run_dir / runs.MODEL_FILE).is_file()
