"""Resume and interruption: a run folder has one writer (a second resume is refused, a lock left
by a dead process is taken over), anything but one run folder is refused, a missing checkpoint is
said or refused, a Ctrl-C while a finished training draws its figures resumes at drawing only, and
an old interrupted.npz is kept out of the training sequence."""

from __future__ import annotations

import contextlib
import json
import os
import shutil

import pytest

from kexp import cli
from kexp.config import TrainConfig
from kexp.storage import run_lock, runs
from kexp.views import plots

from helpers import lock_held_elsewhere, without_figures

pytestmark = pytest.mark.slow  # every test here trains a model


def copy_of(interrupted_run, tmp_path):
    return shutil.copytree(interrupted_run, tmp_path / "runs" / interrupted_run.name)


def add_second_epoch_row(run_dir):
    """As if the run had logged epoch 2 too (its checkpoint then is the one missing)."""
    with open(run_dir / runs.HISTORY_FILE, encoding="utf-8") as handle:
        header, first = handle.read().splitlines()[:2]
    second = ",".join(["2", *first.split(",")[1:]])
    (run_dir / runs.HISTORY_FILE).write_text(f"{header}\n{first}\n{second}\n")


REFUSED = {
    # case: (change to the copied run -> --resume value, fragment of the message)
    "all": (lambda run_dir: "all", "Invalid value for `resume`: 'all'. Expected one run folder"),
    "nothing": (lambda run_dir: "", "Invalid value for `resume`: ''. Expected one run folder"),
    "a folder of runs": (lambda run_dir: str(run_dir.parent), "not a run folder"),
    "checkpoint deleted after two epochs": (
        lambda run_dir: add_second_epoch_row(run_dir) or shutil.rmtree(
            run_dir / runs.CHECKPOINT_DIR) or str(run_dir),
        "2 epoch(s) were completed, but"),
    "checkpoint beyond the planned epochs": (
        lambda run_dir: os.replace(run_dir / "checkpoint" / "epoch_001.npz",
                                   run_dir / "checkpoint" / "epoch_1000.npz") or str(run_dir),
        "its checkpoint epoch_1000.npz is after epoch 1000 of the 2 planned"),
    "a run another process is writing": (lambda run_dir: str(run_dir), "is being written by "
                                         f"process {os.getpid()} on"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_resume_refuses_what_it_cannot_continue_and_changes_nothing(interrupted_run, tmp_path,
                                                                    capsys, case):
    run_dir = copy_of(interrupted_run, tmp_path)
    change, fragment = REFUSED[case]
    argument = change(run_dir)
    status_before = (run_dir / runs.STATUS_FILE).read_text()
    history_before = (run_dir / runs.HISTORY_FILE).read_text()
    with run_lock.hold(run_dir) if "another process" in case else contextlib.nullcontext():
        code = cli.main(["train", "--resume", argument, "--runs-dir", str(run_dir.parent)])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err, err
    assert (run_dir / runs.STATUS_FILE).read_text() == status_before
    assert (run_dir / runs.HISTORY_FILE).read_text() == history_before
    assert not (run_dir / runs.LOCK_FILE).exists()


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(interrupted_run,
                                                                          tmp_path, capsys):
    run_dir = without_figures(copy_of(interrupted_run, tmp_path))  # no test reads them here
    with lock_held_elsewhere(run_dir, dies_holding_it=True) as holder:
        arguments = ["train", "--resume", str(run_dir), "--runs-dir", str(run_dir.parent)]
        assert cli.main(arguments) == 2
        assert f"is being written by process {holder.pid} on" in capsys.readouterr().err
    assert json.loads((run_dir / runs.LOCK_FILE).read_text())["pid"] == holder.pid

    assert cli.main(arguments) == 0, capsys.readouterr().err
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    assert [row["epoch"] for row in runs.read_history(run_dir)] == [1, 2]
    assert not (run_dir / runs.LOCK_FILE).exists()
    # The interrupted.npz of the first attempt is kept, under its name, out of the sequence.
    labels = [label for label, _ in runs.snapshot_sequence(run_dir)]
    assert labels == ["initial", "epoch_001", "epoch_002", "final"]
    kernels = run_dir / runs.KERNELS_DIR
    assert (kernels / "interrupted_attempt_1.npz").read_bytes() == \
        (interrupted_run / runs.KERNELS_DIR / "interrupted.npz").read_bytes()
    assert runs.read_status(run_dir)["attempt"] == 2


@pytest.mark.parametrize("stage", ["render_run", "save_model_atomic"])
def test_ctrl_c_after_training_finished_resumes_at_the_end_only(tmp_path, monkeypatch, capsys,
                                                                tiny_config_values, stage):
    """Ctrl-C while a finished training saves its model or draws its figures: the run is
    interrupted with its checkpoint kept, and a resume only evaluates, saves and draws."""
    from kexp.network import saving
    from kexp.training import trainer

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    target = plots if stage == "render_run" else saving
    original = getattr(target, stage)
    monkeypatch.setattr(target, stage, ctrl_c)
    config = TrainConfig(runs_dir=str(tmp_path / "runs"), **{**tiny_config_values, "epochs": 1})
    with pytest.raises(trainer.TrainingInterrupted) as stopped:
        trainer.train(config, verbose=0)
    run_dir = stopped.value.run_dir
    assert runs.read_status(run_dir)["status"] == runs.STATUS_INTERRUPTED
    assert (run_dir / runs.CHECKPOINT_DIR / "epoch_001.npz").is_file()
    history = (run_dir / runs.HISTORY_FILE).read_text()

    monkeypatch.setattr(target, stage, original)
    capsys.readouterr()
    trainer.resume(run_dir, verbose=0)

    assert "its training had finished: only evaluating and drawing" in capsys.readouterr().out
    assert (run_dir / runs.HISTORY_FILE).read_text() == history  # no epoch trained again
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    assert (run_dir / runs.MODEL_FILE).is_file()
    assert (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()
    assert not (run_dir / runs.CHECKPOINT_DIR).exists()


def test_a_run_without_a_checkpoint_that_completed_no_epoch_says_it_starts_again(
        interrupted_run, tmp_path, capsys):
    run_dir = without_figures(copy_of(interrupted_run, tmp_path))  # no test reads them here
    shutil.rmtree(run_dir / runs.CHECKPOINT_DIR)
    (run_dir / runs.HISTORY_FILE).unlink()
    for label in ("epoch_001", "interrupted"):
        (run_dir / runs.KERNELS_DIR / runs.snapshot_name(label)).unlink()
    assert cli.main(["train", "--resume", str(run_dir), "--runs-dir", str(run_dir.parent)]) == 0
    assert "has no checkpoint yet: it starts again from epoch 1" in capsys.readouterr().out
    assert [row["epoch"] for row in runs.read_history(run_dir)] == [1, 2]
