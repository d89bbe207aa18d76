"""The initializer study on Ray, with a real Ray on this machine: the same rows as the local pool,
a node lost mid-training, `--engine ray` without Ray, `--resume`, and the engine settings' errors.

Every Ray process listens on 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray
is imported), without a dashboard and with a small object store; every test shuts its Ray down.
Ray's token, Ray's session files and kexp's worker folders stay in a folder of this module's own
(own_ray_folders), not in ~/.ray or the temporary folder that the machine's other users share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before anything imports ray

from kexp import cli
from kexp.storage import atomic, runs
from kexp.experiments.compare import (command, engines, plan, ray_engine, ray_token,  # noqa: E402
                                      ray_worker, record, shipping)
from kexp.experiments.compare.sweep import CHILD_MODULE  # noqa: E402

from helpers import TINY_STUDY, run_python  # noqa: E402

pytestmark = pytest.mark.slow

OBJECT_STORE_MB = 100
RAY_VARIABLES = (ray_token.MODE_VARIABLE, ray_token.TOKEN_VARIABLE, ray_token.TOKEN_PATH_VARIABLE,
                 "TMPDIR")
# What a training's row says about the training itself (not where or how long it ran).
SAME_ROW = ("initializer", "seed", "status", "train_accuracy", "test_accuracy", "test_loss",
            "epochs", "conv1_mean_relative_change", "conv2_mean_relative_change",
            "conv1_distinct_initial", "conv1_distinct_final")


def summary_rows(compare_dir: Path) -> list[dict]:
    return json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]


@pytest.fixture(scope="module", autouse=True)
def own_ray_folders(tmp_path_factory):
    """A token file for Ray (RAY_AUTH_TOKEN_PATH: a local Ray would otherwise save a new token to
    ~/.ray/auth_token) and a temporary folder (TMPDIR: Ray's session files, the workers'
    kexp-ray/ folders), both in a short folder of this module's own (Ray's socket paths must
    stay under 108 characters); the environment is restored afterwards."""
    tmp_path_factory.getbasetemp()  # pytest's own folders stay where they are
    root = Path(tempfile.mkdtemp(prefix="kexp-test-"))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    saved = {name: os.environ.pop(name, None) for name in RAY_VARIABLES}
    os.environ.update({ray_token.TOKEN_PATH_VARIABLE: str(token), "TMPDIR": str(root)})
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(root)
    try:
        yield root
    finally:
        tempfile.tempdir = saved_tempdir
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def training_processes() -> set[int]:
    """Process ids of the study's trainings that Ray workers started for this test: this
    process's descendants that run kexp's training child."""
    import psutil  # installed with Ray

    found = set()
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if CHILD_MODULE in process.cmdline():
                found.add(process.pid)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (a zombie has ended)."""
    import psutil

    running = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.add(pid)
    return running


def stop_once_a_checkpoint_is_written(work_root: Path, sweep: threading.Thread,
                                      deadline: float, said: list[str]) -> set[int]:
    """Stop (SIGSTOP) every training process once one has written an epoch checkpoint in its
    worker's folder (<tmp>/kexp-ray/<worker pid>-*/), checked while they are all stopped: that
    training is still running, and none of them can end before the node is lost. Their ids."""
    import psutil

    while True:
        assert time.monotonic() < deadline and sweep.is_alive(), said
        if list(work_root.glob(f"*/runs/*/{runs.CHECKPOINT_DIR}/epoch_*.npz")):
            stopped = []
            for pid in training_processes():
                with contextlib.suppress(psutil.Error):
                    process = psutil.Process(pid)
                    process.suspend()
                    stopped.append(process)
            for process in stopped:
                with contextlib.suppress(psutil.Error):
                    if process.status() != psutil.STATUS_ZOMBIE and list(work_root.glob(
                            f"{process.ppid()}-*/runs/*/{runs.CHECKPOINT_DIR}/epoch_*.npz")):
                        return {each.pid for each in stopped}
            for process in stopped:
                with contextlib.suppress(psutil.Error):
                    process.resume()
        time.sleep(0.1)


def assert_complete(compare_dir: Path, row: dict, epochs: int) -> None:
    """A finished run folder with everything a finished training leaves."""
    run_dir = compare_dir / row["run"]
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED, row
    assert len(runs.read_history(run_dir)) == epochs
    for name in (runs.CONFIG_FILE, runs.MODEL_FILE, "kernels/initial.npz", "kernels/final.npz",
                 f"figures/{runs.CONV1_FIGURE}"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / runs.CHECKPOINT_DIR).exists()
    assert not list((compare_dir / plan.RUNS_SUBDIR).glob(".*"))  # no half-landed folder


def test_a_lost_node_is_retried_from_its_checkpoint_and_the_study_completes(tmp_path,
                                                                            own_ray_folders):
    """A head node with no CPUs (the driver's machine) and a worker node with 2: both trainings
    run on the worker. Once one has written its first epoch checkpoint, both are stopped
    (SIGSTOP), so that neither can end first; the node is removed once a checkpoint has reached
    the driver, a fresh node replaces it (as an autoscaler would), and the retried tasks continue
    from the checkpoints. Two epochs: the first one's checkpoint, then training to continue."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node_options = dict(object_store_memory=OBJECT_STORE_MB * 2**20)
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=0, include_dashboard=False, **node_options,
        _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3}))
    try:
        worker = cluster.add_node(num_cpus=2, **node_options)
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        study = plan.Study(runs_dir=str(tmp_path), **{**TINY_STUDY, "epochs": 2,
                                                      "initializers": ["glorot_uniform",
                                                                       "he_normal"]})
        done: list[Path] = []
        said: list[str] = []
        sweep = threading.Thread(target=lambda: done.append(command.run_study(
            study, say=said.append, engine=ray_engine.RayEngine(address=cluster.address))))
        sweep.start()
        deadline = time.monotonic() + 180
        stopped = stop_once_a_checkpoint_is_written(own_ray_folders / ray_worker.WORK_ROOT,
                                                    sweep, deadline, said)
        while not list(tmp_path.glob(f"compare-*/logs/*{plan.CHECKPOINT_SUFFIX}")):
            assert time.monotonic() < deadline and sweep.is_alive(), said
            time.sleep(0.1)
        lost_trainings = stopped | training_processes()
        cluster.remove_node(worker, allow_graceful=False)  # as a crash: no goodbye
        cluster.add_node(num_cpus=2, **node_options)
        while alive(lost_trainings) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lost_trainings and not alive(lost_trainings)  # died with it
        sweep.join(timeout=240)
        assert done, said
    finally:
        ray.shutdown()
        cluster.shutdown()
    compare_dir = done[0]
    results = [runs.read_json(path)
               for path in (compare_dir / plan.LOGS_SUBDIR).glob(f"*{plan.RESULT_SUFFIX}")]
    assert [row["status"] for row in summary_rows(compare_dir)] == ["finished", "finished"]
    for row in summary_rows(compare_dir):
        assert_complete(compare_dir, row, epochs=2)
    retried = [result for result in results if result["attempt"] > 1]
    assert retried, results
    assert any(result["resumed_after_epoch"] >= 1 for result in retried), results
    assert not list((compare_dir / plan.LOGS_SUBDIR).glob(f"*{plan.CHECKPOINT_SUFFIX}"))
    # The next attempt on this machine removes the folders that the lost workers left.
    ray_worker.work_folder().rmdir()
    assert not list((own_ray_folders / ray_worker.WORK_ROOT).iterdir())


def test_engine_ray_without_ray_says_how_to_install_it_and_creates_nothing(tmp_path):
    blocked = ("import sys; sys.modules['ray'] = None; from kexp import cli; "
               "sys.exit(cli.main(sys.argv[1:]))")
    result = run_python(blocked, "compare", "--engine", "ray", "--runs-dir", tmp_path / "runs",
                        timeout=60)
    assert result.returncode == 2, result.stderr
    assert "pip install 'kexp[ray]'" in result.stderr and "requirements-ray.txt" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("arguments, message", [
    (dict(name="spark"), "Invalid value for `engine`: 'spark'. Expected one of: local, ray."),
    (dict(name="local", cpus_per_training=0),
     "Invalid value for `cpus_per_training`: 0. Expected a whole number >= 1."),
    (dict(name="local", address="10.0.0.1:6379"),
     "Invalid value for `address`: '10.0.0.1:6379'. Expected none with --engine local"),
])
def test_bad_engine_settings_are_refused(arguments, message):
    with pytest.raises(engines.EngineError, match=re.escape(message)):
        engines.make_engine(**arguments)


def test_the_command_line_refuses_a_bad_engine_before_creating_anything(tmp_path, capsys):
    assert cli.main(["compare", "--engine", "spark", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "Invalid value for `engine`: 'spark'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    with pytest.raises(runs.RunError, match="Invalid value for `resume`"):
        command.resume_study(tmp_path)


def test_the_local_pool_shares_the_cpus_out(monkeypatch):
    monkeypatch.setattr(engines, "machine_cpus", lambda: 8)
    assert engines.LocalEngine(jobs=2).threads == 4
    assert engines.LocalEngine(jobs=16).threads == 1
    assert engines.LocalEngine(jobs=2, cpus_per_training=3).threads == 3


def test_resume_continues_from_a_checkpoint_that_a_ray_worker_shipped(tiny_study, tmp_path):
    """An interrupted Ray study keeps each unfinished training's last checkpoint as a tar;
    --resume lands it in runs/ so that either engine continues that run. (The tar here is a
    finished run of the session's tiny study: landed as a checkpoint, it becomes interrupted.)"""
    trained_run = tiny_study.compare_dir / tiny_study.rows["glorot_uniform"]["run"]
    assert runs.read_status(trained_run)["status"] == runs.STATUS_FINISHED
    study = plan.Study(runs_dir=str(tmp_path), **TINY_STUDY)
    compare_dir = plan.create_compare_dir(tmp_path)
    record.write_study(compare_dir, study)
    (glorot, zeros) = plan.trainings(study)
    atomic.write_bytes_atomic(glorot.file(compare_dir, plan.CHECKPOINT_SUFFIX),
                            shipping.pack_run(trained_run))
    glorot, zeros = record.recorded_trainings(compare_dir, record.read_study(compare_dir))
    assert glorot.run_dir == compare_dir / plan.RUNS_SUBDIR / trained_run.name
    assert runs.read_status(glorot.run_dir)["status"] == runs.STATUS_INTERRUPTED
    assert glorot.status == zeros.status == "pending" and zeros.run_dir is None


def test_more_cpus_per_training_than_any_node_has_is_refused_before_anything(tmp_path):
    ray = pytest.importorskip("ray")
    engine = ray_engine.RayEngine(cpus_per_training=64, object_store_mb=OBJECT_STORE_MB)
    study = plan.Study(runs_dir=str(tmp_path / "runs"), **TINY_STUDY)
    with pytest.raises(ray_engine.RayEngineError,
                       match=re.escape("Invalid value for `cpus_per_training`: 64.")):
        command.run_study(study, say=lambda line: None, engine=engine)
    assert not (tmp_path / "runs").exists() and not ray.is_initialized()


# The tests of the Ray study next to the local pool come last: the local half is the session's
# tiny study, which test_compare.py (on the other pytest-xdist worker) may be computing meanwhile.
@pytest.fixture(scope="module")
def two_engines(tiny_study, tmp_path_factory):
    """The same trainings on the local pool and on a local Ray that kexp starts itself, one CPU
    (one TensorFlow thread) per training on both: the local half is the session's tiny study
    (tests/conftest.py, computed once), the Ray half its glorot_uniform and zeros again."""
    pytest.importorskip("ray")
    said: list[str] = []
    study = dataclasses.replace(tiny_study.study, initializers=["glorot_uniform", "zeros"],
                                runs_dir=str(tmp_path_factory.mktemp("engines")))
    on_ray = command.run_study(study, say=said.append,
                               engine=ray_engine.RayEngine(object_store_mb=OBJECT_STORE_MB))
    return tiny_study.rows, on_ray, said


def test_local_ray_gives_the_same_rows_as_the_local_pool(two_engines):
    import ray

    local, on_ray, said = two_engines
    assert not ray.is_initialized()  # kexp stopped the Ray it started
    pick = [{key: local[init][key] for key in SAME_ROW} for init in ("glorot_uniform", "zeros")]
    assert pick == [{key: row[key] for key in SAME_ROW} for row in summary_rows(on_ray)]
    for row in summary_rows(on_ray):
        assert_complete(on_ray, row, epochs=1)
    assert not list((on_ray / plan.LOGS_SUBDIR).glob(f"*{plan.CHECKPOINT_SUFFIX}"))
    result = runs.read_json(on_ray / plan.LOGS_SUBDIR / f"zeros-seed0{plan.RESULT_SUFFIX}")
    assert result["attempt"] == 1 and result["status"] == "finished"
    assert "attempt 1" in (on_ray / plan.LOGS_SUBDIR / "zeros-seed0.log").read_text()
    ray_lines = [line for line in said if "finished " in line][-2:]
    assert [re.search(r"\((\d)/2\)", line).group(1) for line in ray_lines] == ["1", "2"]


def test_resume_reruns_only_what_did_not_finish(two_engines, capsys):
    """A study whose driver died: one run folder landed, the other never did, and no summary
    was written. --resume trains only the missing one and rewrites the tables and the page."""
    _, on_ray, _ = two_engines
    rows = {row["initializer"]: row for row in summary_rows(on_ray)}
    kept = on_ray / rows["glorot_uniform"]["run"]
    kept_status = (kept / runs.STATUS_FILE).read_bytes()
    runs_before = set((on_ray / plan.RUNS_SUBDIR).iterdir())
    (on_ray / plan.SUMMARY_JSON).unlink()
    (on_ray / plan.LOGS_SUBDIR / f"zeros-seed0{plan.RESULT_SUFFIX}").unlink()
    shutil.rmtree(on_ray / rows["zeros"]["run"])

    assert cli.main(["compare", "--resume", str(on_ray), "--cpus-per-training", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 trainings finished, 1 to run" in out
    assert "started  zeros seed 0" in out and "started  glorot_uniform" not in out
    assert (kept / runs.STATUS_FILE).read_bytes() == kept_status  # not trained again
    resumed = {row["initializer"]: row for row in summary_rows(on_ray)}
    assert resumed["glorot_uniform"]["run"] == rows["glorot_uniform"]["run"]
    assert resumed["zeros"]["test_accuracy"] == rows["zeros"]["test_accuracy"]
    for row in resumed.values():
        assert_complete(on_ray, row, epochs=1)
    assert len(set((on_ray / plan.RUNS_SUBDIR).iterdir()) - runs_before) == 1
