"""The initializer study on a tiny configuration: what `make compare` leaves behind, that one
failing training does not stop the others, the symmetry problem in numbers, the animation, the
page's links and the TensorBoard logs. One sweep (three trainings, two at a time) serves them all.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest

from kexp import analysis, cli, runs
from kexp.config import ConfigError
from kexp.experiments import animate
from kexp.experiments.compare import command, plan

pytestmark = pytest.mark.slow

TINY = dict(initializers=["glorot_uniform", "zeros"], seeds=[0], epochs=1, train_samples=300,
            snapshot_every_batches=1, tensorboard=True, jobs=2)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny sweep plus a training whose data file does not exist: it passes the sweep's own
    checks and fails inside its training process."""
    root = tmp_path_factory.mktemp("compare")
    study = plan.Study(runs_dir=str(root / "runs"), **TINY)
    failing = dataclasses.replace(study, initializers=["he_normal"],
                                  data=str(root / "missing" / "mnist.npz"))
    said: list[str] = []
    compare_dir = command.run_study(study, say=said.append,
                                    trainings=plan.trainings(study) + plan.trainings(failing))
    rows = json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]
    return compare_dir, {row["initializer"]: row for row in rows}, said


def test_sweep_writes_every_file_with_consistent_rows(sweep):
    compare_dir, rows, _ = sweep
    assert compare_dir.name.startswith("compare-")
    for name in (plan.FIGURE_FILE, plan.SUMMARY_CSV, plan.SUMMARY_JSON, plan.INDEX_FILE):
        assert (compare_dir / name).stat().st_size > 0, name
    with open(compare_dir / plan.SUMMARY_CSV, newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["initializer"] for row in csv_rows] == ["glorot_uniform", "zeros", "he_normal"]
    assert tuple(csv_rows[0]) == plan.SUMMARY_COLUMNS
    for csv_row in csv_rows:
        json_row = rows[csv_row["initializer"]]
        assert csv_row == {key: "" if value is None else str(value)
                           for key, value in json_row.items()}
    for init in ("glorot_uniform", "zeros"):
        row = rows[init]
        assert row["status"] == "finished" and row["epochs"] == 1
        assert 0 <= row["test_accuracy"] <= 1 and 0 <= row["train_accuracy"] <= 1
        assert runs.read_status(compare_dir / row["run"])["test_accuracy"] == pytest.approx(
            row["test_accuracy"], abs=1e-6)


def test_a_failing_training_is_reported_and_does_not_stop_the_others(sweep):
    compare_dir, rows, said = sweep
    failed = rows["he_normal"]
    assert failed["status"] == "failed"
    assert "mnist.npz" in failed["reason"] and failed["test_accuracy"] is None
    assert rows["glorot_uniform"]["status"] == rows["zeros"]["status"] == "finished"
    assert (compare_dir / "logs" / "he_normal-seed0.log").exists()
    assert sum(line.startswith("kexp compare: started ") for line in said) == 3
    assert any("he_normal seed 0" in line and "FAILED" in line for line in said)


def test_zeros_shows_the_symmetry_problem_and_glorot_does_not(sweep):
    compare_dir, rows, _ = sweep
    assert rows["zeros"]["conv1_distinct_initial"] == rows["zeros"]["conv1_distinct_final"] == 1
    assert rows["glorot_uniform"]["conv1_distinct_initial"] == 32
    assert rows["glorot_uniform"]["conv1_distinct_final"] == 32
    final = runs.load_kernels(compare_dir / rows["zeros"]["run"] / "kernels" / "final.npz")
    assert analysis.distinct_filters(final["conv1"]) == 1
    assert rows["glorot_uniform"]["conv1_mean_relative_change"] > 0


def test_the_animation_has_one_frame_per_snapshot(sweep):
    from PIL import Image

    compare_dir, rows, _ = sweep
    run_dir = compare_dir / rows["glorot_uniform"]["run"]
    snapshots = runs.snapshot_sequence(run_dir)
    assert len(snapshots) == 6  # initial, batches 1-3, epoch_001, final
    with Image.open(run_dir / "figures" / animate.ANIMATION_FILE) as gif:
        assert gif.n_frames == len(snapshots)
    assert animate.snapshot_title("epoch_001_batch_00002", 3) == "step 2 (epoch 1, batch 2)"
    assert animate.snapshot_title("epoch_002", 3) == "step 6 (end of epoch 2)"
    assert animate.snapshot_title("final", 3, 2) == "step 6 (end of training)"


def test_animate_command_writes_where_asked(sweep, tmp_path, capsys):
    compare_dir, rows, _ = sweep
    output = tmp_path / "zeros.gif"
    run_dir = compare_dir / rows["zeros"]["run"]
    assert cli.main(["animate", str(run_dir), "--runs-dir", str(compare_dir / "runs"),
                     "--output", str(output)]) == 0
    assert "6 frames" in capsys.readouterr().out and output.stat().st_size > 0


def test_the_page_links_only_files_that_exist(sweep):
    compare_dir, rows, _ = sweep
    page = (compare_dir / plan.INDEX_FILE).read_text()
    targets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert plan.FIGURE_FILE in targets
    local = [target for target in targets if not target.startswith("data:")]
    assert len(local) > 10
    for target in local:
        assert "://" not in target and not target.startswith("/"), target
        assert (compare_dir / target).exists(), target
    for row in rows.values():
        assert f"{row['initializer']}, seed 0: {row['status']}" in page


def test_tensorboard_logs_are_written_into_each_run(sweep):
    compare_dir, rows, _ = sweep
    logs = compare_dir / rows["glorot_uniform"]["run"] / "tensorboard"
    train_events = b"".join(path.read_bytes() for path in (logs / "train").glob("events.*"))
    for tag in (b"epoch_loss", b"conv1/kernel/histogram", b"conv1/kernel/image"):
        assert tag in train_events, tag  # scalars, weight histograms, conv1 as an image
    assert list((logs / "validation").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("changes, message", [
    (dict(jobs=0), "Invalid value for `jobs`: 0. Expected a whole number >= 1."),
    (dict(initializers=["glorot_unifrom"]), "Invalid value for `init`: 'glorot_unifrom'"),
    (dict(initializers=["zeros", "zeros"]), "Invalid value for `initializers`: 'zeros'"),
    (dict(seeds=[-1]), "Invalid value for `seed`: -1"),
    (dict(epochs=0), "Invalid value for `epochs`: 0"),
])
def test_bad_settings_are_refused_before_anything_starts(tmp_path, changes, message):
    study = plan.Study(runs_dir=str(tmp_path / "runs"), **{**TINY, **changes})
    with pytest.raises(ValueError, match=re.escape(message)):
        command.run_study(study, say=lambda line: None)
    assert not (tmp_path / "runs").exists()


def test_the_command_line_reports_bad_settings(tmp_path, capsys):
    assert cli.main(["compare", "--inits", "he_normall", "--runs-dir", str(tmp_path)]) == 2
    assert "Invalid value for `init`: 'he_normall'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Invalid value for `seeds`"):
        plan.Study(seeds=[]).validate()


def test_make_dash_j_sets_the_number_of_jobs():
    assert command.jobs_from_makeflags(" -j3 --jobserver-auth=3,4") == 3
    assert command.jobs_from_makeflags("") is None
    assert {"glorot_uniform", "zeros"} <= set(plan.study_initializers())


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_stopped_study_keeps_finished_rows_and_interrupts_the_running_one(tmp_path,
                                                                           signal_name):
    """A scheduler's SIGTERM (or Ctrl-C) stops the sweep the way Ctrl-C stops a training: the
    running child saves its kernels and is `interrupted`, finished rows stay, the rest is
    `skipped`, and the exit code is 128+N."""
    import os
    import signal
    import subprocess
    import sys
    import time

    number = getattr(signal, signal_name)

    def default_dispositions():
        for each in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(each, signal.SIG_DFL)

    output = tmp_path / "compare.out"
    with open(output, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "kexp", "compare", "--inits", "glorot_uniform", "he_normal",
             "orthogonal", "--seeds", "0", "--epochs", "30", "--train-samples", "256",
             "--jobs", "1", "--runs-dir", str(tmp_path / "runs")],
            cwd=Path(__file__).resolve().parents[1], stdout=handle, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, preexec_fn=default_dispositions)
    deadline = time.monotonic() + 240
    while "started  he_normal" not in output.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()
        time.sleep(0.2)
    time.sleep(4.0)  # the second training is under way
    process.send_signal(number)
    assert process.wait(timeout=120) == 128 + number, output.read_text()[-3000:]

    (compare_dir,) = (tmp_path / "runs").iterdir()
    rows = {row["initializer"]: row
            for row in json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]}
    assert rows["glorot_uniform"]["status"] == runs.STATUS_FINISHED
    assert rows["he_normal"]["status"] == runs.STATUS_INTERRUPTED
    assert signal_name in rows["he_normal"]["reason"]
    assert rows["orthogonal"]["status"] == "skipped"
    interrupted_run = Path(rows["he_normal"]["run"])
    if not interrupted_run.is_absolute():
        interrupted_run = compare_dir / interrupted_run
    assert (interrupted_run / runs.KERNELS_DIR / "interrupted.npz").is_file()
