"""Run folders: exclusive creation, atomic writes, resolving RUN=, crash detection."""

import json
import os

import numpy as np
import pytest

from kexp.config import TrainConfig
from kexp.storage import atomic, run_lock, runs
from kexp.storage.runs import RunError


def make_run(root, name):
    run_dir = root / name
    (run_dir / "kernels").mkdir(parents=True)
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, {"config": {}})
    return run_dir


def test_run_folders_are_distinct_and_exclusive(tmp_path):
    created = {runs.create_run_dir(tmp_path, "glorot_uniform") for _ in range(20)}
    assert len(created) == 20
    assert all((path / "kernels").is_dir() and (path / "figures").is_dir() for path in created)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    atomic.write_json_atomic(path, {"status": "running"})

    def explode(fd):  # the new bytes are written, and found not to fit as they reach the disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", explode)
    with pytest.raises(atomic.DiskFull, match=r"The disk is full: could not write '.*status.json'"):
        atomic.write_json_atomic(path, {"status": "finished"})
    assert json.loads(path.read_text()) == {"status": "running"}
    assert os.listdir(tmp_path) == ["status.json"]  # no temporary file left behind


def test_writers_that_need_a_file_name_are_fsynced_before_the_rename(tmp_path, file_events):
    path = atomic.write_path_atomic(tmp_path / "figure.png",
                                  lambda temporary: temporary.write_bytes(b"png"))
    assert file_events == ["fsync", "replace"] and path.read_bytes() == b"png"

    def explode(temporary):
        temporary.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(atomic.DiskFull, match=r"The disk is full: could not write '.*figure.png'"):
        atomic.write_path_atomic(path, explode)
    assert path.read_bytes() == b"png" and os.listdir(tmp_path) == ["figure.png"]


def test_read_config_reads_the_recorded_config_with_every_setting(tmp_path):
    """A TrainConfig, validated, the settings the file leaves out at their defaults; the data
    record beside it."""
    run_dir = make_run(tmp_path, "20260101-000000-a")
    recorded = {"config": {"epochs": 3}, "data": {"source": "mnist-5k", "sha256": "ab"}}
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, recorded)
    read = runs.read_config(run_dir)
    assert isinstance(read, TrainConfig) and read == TrainConfig(epochs=3)
    assert runs.read_data_record(run_dir) == recorded["data"]
    for bad, named in (({"epochs": 0}, "`epochs`: 0"), ({"epoch": 3}, "Unknown settings: epoch")):
        atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, {**recorded, "config": bad})
        with pytest.raises(RunError, match=f"config.json': its settings are invalid: .*{named}"):
            runs.read_config(run_dir)
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, {"config": {}})
    with pytest.raises(RunError, match=r"config.json': `data` is missing\. Expected a JSON"):
        runs.read_config(run_dir)


def test_npz_round_trip_and_no_pickles(tmp_path):
    arrays = {"conv1": np.ones((3, 3, 1, 32), np.float32)}
    path = atomic.write_npz_atomic(tmp_path / "k.npz", arrays)
    assert np.array_equal(runs.load_kernels(path)["conv1"], arrays["conv1"])
    np.savez(tmp_path / "evil.npz", conv1=np.array([object()], dtype=object))
    with pytest.raises(RunError, match="evil.npz'.*object arrays would need unpickling"):
        runs.load_kernels(tmp_path / "evil.npz")


def test_resolve_run_newest_all_named_and_refusals(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(RunError, match="No runs in"):
        runs.resolve_run(None, root)
    old, new = make_run(root, "20260101-000000-a"), make_run(root, "20260102-000000-b")
    assert runs.resolve_run(None, root) == [new]
    assert runs.resolve_run("all", root) == [old, new]
    assert runs.resolve_run(old.name, root) == [old.resolve()]
    assert runs.resolve_run(str(old), root) == [old.resolve()]
    outside = make_run(tmp_path, "elsewhere")  # a run folder is one wherever it lives
    assert runs.resolve_run(str(outside), root) == runs.resolve_run("../elsewhere", root) == \
        [outside.resolve()]
    with pytest.raises(RunError, match=r"Invalid value for `RUN`: 'all'.* --runs-dir DIR\)\.$"):
        runs.resolve_run("all", root, allow_all=False)
    with pytest.raises(RunError, match="is not a run folder"):
        runs.resolve_run("20990101-nothing", root)


def test_a_running_status_whose_process_is_gone_reads_as_crashed(tmp_path):
    run_dir = make_run(tmp_path, "r")
    runs.write_status(run_dir, runs.STATUS_RUNNING)
    with run_lock.hold(run_dir):  # alive: its writer holds the run's lock
        assert runs.read_status(run_dir)["status"] == "running"
    assert runs.read_status(run_dir)["status"] == "crashed"  # this pid lives, but holds no lock
    payload = json.loads((run_dir / "status.json").read_text())
    payload["pid"] = 2**22 + 12345  # beyond pid_max on this kind of machine
    (run_dir / "status.json").write_text(json.dumps(payload))
    assert runs.read_status(run_dir)["status"] == "crashed"


def test_snapshot_sequence_is_in_training_order(tmp_path):
    run_dir = make_run(tmp_path, "r")
    for stem in ["final", "epoch_002", "epoch_001", "initial", "epoch_001_batch_00010",
                 "epoch_001_batch_00002", "interrupted", "notes"]:
        atomic.write_npz_atomic(run_dir / "kernels" / f"{stem}.npz", {"conv1": np.zeros(1)})
    labels = [label for label, _ in runs.snapshot_sequence(run_dir)]
    assert labels == ["initial", "epoch_001_batch_00002", "epoch_001_batch_00010", "epoch_001",
                      "epoch_002", "interrupted", "final"]


@pytest.mark.parametrize("torn", ["3,0.5", "3,0.52,0.87,0.4", "3,0.52,0.87,0.41,0.9"])
def test_read_history_leaves_out_a_last_row_cut_short_by_a_crash(tmp_path, torn):
    """history.csv is appended row by row: a hard kill mid-write leaves a last row without its
    line end, whether it lacks fields or only digits (which would read as a wrong number)."""
    run_dir = make_run(tmp_path, "r")
    whole = "epoch,seconds,accuracy,loss\r\n1,0.5,0.81,0.62\r\n2,0.5,0.86,0.45\r\n"
    (run_dir / runs.HISTORY_FILE).write_text(whole + torn, newline="")
    rows = runs.read_history(run_dir)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[1] == {"epoch": 2, "seconds": 0.5, "accuracy": 0.86, "loss": 0.45}
    (run_dir / runs.HISTORY_FILE).write_text("epoch,seconds,acc", newline="")
    assert runs.read_history(run_dir) == []
