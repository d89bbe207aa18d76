"""A run folder sent over the wire as bytes lands whole or not at all (no Ray, no Keras)."""

from __future__ import annotations

import io
import tarfile

import pytest

from kexp.experiments.compare import shipping
from kexp.storage import atomic, runs


@pytest.fixture
def run_dir(tmp_path):
    run = runs.create_run_dir(tmp_path / "worker", "glorot_uniform")
    atomic.write_json_atomic(run / runs.CONFIG_FILE, {"config": {}})
    (run / runs.HISTORY_FILE).write_text("epoch,loss\n1,0.5\n2,0.4")  # row 2 half-written
    (run / runs.CHECKPOINT_DIR).mkdir()
    (run / runs.CHECKPOINT_DIR / "epoch_001.npz").write_bytes(b"state")
    (run / runs.KERNELS_DIR / ".initial.npz.x.tmp").write_bytes(b"being written")
    return run


def test_a_run_folder_lands_whole_with_only_complete_history_rows(run_dir, tmp_path):
    study_runs = tmp_path / "study" / "runs"
    study_runs.mkdir(parents=True)
    landed = shipping.land_run(shipping.pack_run(run_dir), study_runs)
    assert landed == study_runs / run_dir.name and runs.is_run_dir(landed)
    assert (landed / runs.HISTORY_FILE).read_text() == "epoch,loss\n1,0.5\n"
    assert (landed / runs.FIGURES_DIR).is_dir()  # empty folders travel too
    assert not list((landed / runs.KERNELS_DIR).iterdir())  # temporary files do not
    assert shipping.latest_checkpoint(landed) == "epoch_001.npz"
    assert [path.name for path in study_runs.iterdir()] == [run_dir.name]


def test_a_newer_copy_replaces_the_older_one(run_dir, tmp_path):
    first = shipping.land_run(shipping.pack_run(run_dir), tmp_path)
    (run_dir / runs.CHECKPOINT_DIR / "epoch_002.npz").write_bytes(b"state 2")
    (run_dir / runs.CHECKPOINT_DIR / "epoch_001.npz").unlink()
    second = shipping.land_run(shipping.pack_run(run_dir), tmp_path)
    assert first == second and shipping.latest_checkpoint(second) == "epoch_002.npz"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["worker", run_dir.name])


def test_a_broken_archive_leaves_nothing_behind(run_dir, tmp_path):
    target = tmp_path / "study"
    target.mkdir()
    archive = shipping.pack_run(run_dir)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        last = tar.getmembers()[-1]  # the manifest; after it only tar's zero padding
    for end in [*range(512, last.offset_data + last.size, 512), len(archive) // 2]:
        with pytest.raises((shipping.ShippingError, tarfile.TarError)):
            shipping.land_run(archive[:end], target)
    assert not list(target.iterdir())


@pytest.mark.parametrize("names", [["a/config.json", "b/config.json"], ["../escape"], []])
def test_an_archive_must_hold_one_run_folder(tmp_path, names):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in names:
            archive.addfile(tarfile.TarInfo(name))
    with pytest.raises((shipping.ShippingError, tarfile.TarError)):
        shipping.land_run(buffer.getvalue(), tmp_path)
    assert not list(tmp_path.iterdir())
