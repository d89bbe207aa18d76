"""Hostile moments of processes, one test per cause: a reused pid, a SIGTERM as the run folder
appears, a second stop signal to a study. What every case gets: the run's state said right
(running only while its lock is held), an interrupted run that resumes, and every training of a
study recorded. (That nothing printed is TensorFlow's start-up lines is test_reliability's: it
reads one of the trainings it starts.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kexp import cli
from kexp.storage import atomic, run_lock, runs

from helpers import TINY_TRAIN_ARGS, copy_run, error_line, lock_held_elsewhere, start_kexp


def listed_status(capsys, runs_dir: Path, run_dir: Path) -> str:
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith(run_dir.name))
    return line.split()[1]


def test_the_lock_not_the_pid_says_whether_a_run_is_alive(trained_run, tmp_path, capsys):
    """Cause 6: a reused pid made a run look alive forever. `running` with the pid of any live
    process (this one, its parent) but no lock held reads as crashed, and --resume goes on; a
    held lock reads as running and --resume is refused naming its holder, whatever the pid."""
    runs_dir = tmp_path / "runs"
    run_dir = copy_run(trained_run, runs_dir)
    status = runs.read_json(run_dir / runs.STATUS_FILE)
    for pid, stale_lock_file in ((os.getpid(), False), (os.getppid(), True), (1, False)):
        atomic.write_json_atomic(run_dir / runs.STATUS_FILE,
                                 {**status, "status": runs.STATUS_RUNNING, "pid": pid})
        if stale_lock_file:  # left by a writer killed with SIGKILL: nobody holds it
            (run_dir / runs.LOCK_FILE).write_text(json.dumps({"pid": pid}))
        assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_CRASHED
        assert f"process {pid} is gone" in runs.read_status(run_dir)["reason"]
        code, err = error_line(capsys, "train", "--resume", str(run_dir))
        assert code == 2 and "is running" not in err and "Cannot resume" in err, err

    with lock_held_elsewhere(run_dir) as holder:
        for pid in (2**31 - 1, os.getpid()):  # no such process, or an unrelated live one
            atomic.write_json_atomic(run_dir / runs.STATUS_FILE,
                                     {**status, "status": runs.STATUS_RUNNING, "pid": pid})
            assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_RUNNING
            code, err = error_line(capsys, "train", "--resume", str(run_dir))
            assert code == 2 and f"being written by process {holder.pid}" in err, err
    assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_CRASHED


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["the folder", runs.CONFIG_FILE,
                                    f"{runs.VIEWS_DIR}/{runs.PROBE_DIGITS_FILE}"])
def test_sigterm_as_the_run_folder_appears_leaves_an_interrupted_run(tmp_path, moment):
    """Cause 8: SIGTERM right after the run folder appeared ended kexp with no message and no
    status.json. The handlers are in place before the folder exists: at any moment of its
    setup the run ends interrupted, with its status and the resume command."""
    runs_dir = tmp_path / "runs"
    process = start_kexp("train", *TINY_TRAIN_ARGS, "--epochs", "50", "--runs-dir", runs_dir,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while process.poll() is None:  # the handshake: the moment appears on disk
            found = [path for path in runs_dir.glob("*") if path.is_dir()] \
                if runs_dir.is_dir() else []
            if found and (moment == "the folder" or (found[0] / moment).exists()):
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.001)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "resume with: " in err, err
    status = runs.read_status(found[0])
    assert status["status"] == runs.STATUS_INTERRUPTED and status["resume"], status


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGTERM, signal.SIGTERM),
                                     (signal.SIGINT, signal.SIGINT)])
def test_a_second_stop_signal_to_compare_still_stops_and_records_every_training(tmp_path,
                                                                              capsys, signals):
    """Cause 4: a second SIGINT or SIGTERM to `kexp compare` orphaned its trainings and wrote no
    summary. Now the second one waits: every training is stopped and recorded interrupted, the
    study's files are written; a resume refuses a study whose driver or trainings still run."""
    runs_dir = tmp_path / "runs"
    output = tmp_path / "compare.out"
    with open(output, "w") as handle:
        process = start_kexp("compare", "--inits", "glorot_uniform", "he_normal", "--seeds", "0",
                             "--epochs", "30", "--train-samples", "256", "--jobs", "2",
                             "--runs-dir", runs_dir, stdout=handle, stderr=subprocess.STDOUT)
    try:
        trained = []
        while len(trained) < 2:  # the handshake: both trainings have logged an epoch
            assert process.poll() is None, output.read_text()[-3000:]
            trained = [run_dir for run_dir in runs_dir.glob("compare-*/runs/*")
                       if runs.read_history(run_dir)]
            time.sleep(0.05)
        study = trained[0].parent.parent
        code, err = error_line(capsys, "compare", "--resume", str(study))  # the driver lives
        assert code == 2 and f"'{study}': it is being written by process {process.pid}" in err
        for number in signals:
            process.send_signal(number)
        assert process.wait(timeout=240) == 128 + signals[0], output.read_text()[-3000:]
    finally:
        process.kill()
    rows = json.loads((study / "summary.json").read_text())["rows"]
    assert [row["status"] for row in rows] == [runs.STATUS_INTERRUPTED] * 2, rows
    for run_dir in trained:  # stopped by the study, not orphaned
        assert runs.read_json(run_dir / runs.STATUS_FILE)["status"] == runs.STATUS_INTERRUPTED
        assert not run_lock.is_held(run_dir)

    # A training that still runs (its process holds its run's lock): the resume is refused.
    status = runs.read_json(trained[0] / runs.STATUS_FILE)
    atomic.write_json_atomic(trained[0] / runs.STATUS_FILE,
                             {**status, "status": runs.STATUS_RUNNING})
    with lock_held_elsewhere(trained[0]):
        code, err = error_line(capsys, "compare", "--resume", str(study))
        assert code == 2 and "is still running in" in err and str(trained[0]) in err, err
    assert runs.read_status(trained[0])["status"] == runs.STATUS_CRASHED  # resumable again

