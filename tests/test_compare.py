"""The initializer study on a tiny configuration: what `make compare` leaves behind, that one
failing training does not stop the others, the symmetry problem in numbers (zeros and ones), the
animation, the page against what the run folders hold, and the TensorBoard logs. One sweep (four
trainings, two at a time) serves them all.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import html
import json
import math
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from kexp import cli
from kexp.config import ConfigError, TrainConfig
from kexp.experiments import animate
from kexp.experiments.compare import command, page, plan, study_figures
from kexp.experiments.compare.sweep import CHILD_MODULE
from kexp.filters import analysis
from kexp.storage import atomic, runs

from helpers import TINY_STUDY, start_kexp

pytestmark = pytest.mark.slow

# What a finished run's figures/ holds: render_run's figures and kexp animate's GIF.
RUN_FIGURES = {runs.CONV1_FIGURE, runs.CONV2_FIGURE, runs.CONV2_SUMMARY_FIGURE,
               runs.HISTOGRAMS_FIGURE, runs.EVOLUTION_FIGURE}


@pytest.fixture(scope="module")
def sweep(tiny_study):
    """The session's tiny study (tests/conftest.py): its folder, rows and progress lines."""
    return tiny_study.compare_dir, tiny_study.rows, tiny_study.said


def test_sweep_writes_every_file_with_consistent_rows(sweep):
    compare_dir, rows, _ = sweep
    assert compare_dir.name.startswith("compare-")
    for name in (plan.FIGURE_FILE, plan.SUMMARY_CSV, plan.SUMMARY_JSON, plan.INDEX_FILE):
        assert (compare_dir / name).stat().st_size > 0, name
    with open(compare_dir / plan.SUMMARY_CSV, newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [row["initializer"] for row in csv_rows] == ["glorot_uniform", "zeros", "ones",
                                                        "he_normal"]
    assert tuple(csv_rows[0]) == plan.SUMMARY_COLUMNS
    for csv_row in csv_rows:
        json_row = rows[csv_row["initializer"]]
        assert csv_row == {key: "" if value is None else str(value)
                           for key, value in json_row.items()}
    for init in ("glorot_uniform", "zeros", "ones"):
        row = rows[init]
        assert row["status"] == "finished" and row["epochs"] == 1
        run_dir = compare_dir / row["run"]  # the row's accuracies are its run folder's, rounded
        (last_epoch,) = runs.read_history(run_dir)
        assert row["train_accuracy"] == pytest.approx(last_epoch["accuracy"], abs=1e-6)
        assert row["test_accuracy"] == pytest.approx(runs.read_status(run_dir)["test_accuracy"],
                                                     abs=1e-6)
    # One class is 10% of these test digits (100 of each); glorot learns in one epoch, zeros not.
    assert rows["glorot_uniform"]["test_accuracy"] > 2 * rows["zeros"]["test_accuracy"]


def test_a_failing_training_is_reported_and_does_not_stop_the_others(sweep):
    compare_dir, rows, said = sweep
    failed = rows["he_normal"]
    assert failed["status"] == "failed"
    assert "mnist.npz" in failed["reason"] and failed["test_accuracy"] is None
    assert rows["glorot_uniform"]["status"] == rows["zeros"]["status"] == "finished"
    assert (compare_dir / "logs" / "he_normal-seed0.log").exists()
    assert sum(line.startswith("kexp compare: started ") for line in said) == 4
    assert any("he_normal seed 0" in line and "FAILED" in line for line in said)


def test_zeros_shows_the_symmetry_problem_and_glorot_does_not(sweep):
    compare_dir, rows, _ = sweep
    assert rows["zeros"]["conv1_distinct_initial"] == rows["zeros"]["conv1_distinct_final"] == 1
    assert rows["glorot_uniform"]["conv1_distinct_initial"] == 32
    assert rows["glorot_uniform"]["conv1_distinct_final"] == 32
    final = runs.load_kernels(compare_dir / rows["zeros"]["run"] / "kernels" / "final.npz")
    assert analysis.distinct_filters(final["conv1"]) == 1
    assert rows["glorot_uniform"]["conv1_mean_relative_change"] > 0


def _kernels(compare_dir: Path, row: dict, label: str) -> dict:
    return runs.load_kernels(compare_dir / row["run"] / runs.KERNELS_DIR / f"{label}.npz")


def test_zeros_kernels_change_exactly_0_and_the_model_answers_one_class(sweep):
    """docs/study.md: with zeros the relative change is exactly 0 and the model ends at 10.0%,
    one class. One class is 10.0% of mnist-5k's test digits (100 of each), in any run."""
    from kexp.digits import data
    from kexp.network import saving

    compare_dir, rows, _ = sweep
    row = rows["zeros"]
    assert row["conv1_mean_relative_change"] == row["conv2_mean_relative_change"] == 0
    before, after = _kernels(compare_dir, row, "initial"), _kernels(compare_dir, row, "final")
    for layer in ("conv1", "conv2"):
        assert not before[layer].any() and not after[layer].any(), layer  # zeros, exactly
    model = saving.load_model(compare_dir / row["run"] / runs.MODEL_FILE)
    for layer in ("conv1", "conv2"):  # nothing in the conv layers moved, biases included
        conv = model.get_layer(layer)
        assert not conv.kernel.numpy().any() and not conv.bias.numpy().any(), layer
    test = data.load("mnist-5k")
    assert np.bincount(test.y_test).tolist() == [100] * 10
    answers = model.predict(data.to_model_inputs(test.x_test), verbose=0).argmax(axis=1)
    assert len(set(answers.tolist())) == 1  # one class for every digit
    assert row["test_accuracy"] == pytest.approx(0.100, abs=1e-6)


def test_ones_filters_move_in_lockstep_and_stay_one_filter(sweep):
    """docs/study.md: with ones the 32 filters move, by the same gradient, so they are still one
    filter copied 32 times. Here each moves by the sum of this sweep's 3 Adam steps' learning
    rates (Adam's first steps move every weight by about the learning rate; the cosine schedule
    sets each step's rate)."""
    from kexp.training import trainer
    compare_dir, rows, _ = sweep
    row = rows["ones"]
    assert row["conv1_distinct_initial"] == row["conv1_distinct_final"] == 1
    before, after = _kernels(compare_dir, row, "initial"), _kernels(compare_dir, row, "final")
    assert np.all(before["conv1"] == 1.0) and not np.array_equal(before["conv1"], after["conv1"])
    change = analysis.relative_change(before["conv1"], after["conv1"])
    assert row["conv1_mean_relative_change"] == pytest.approx(change.mean(), abs=1e-6)
    config = json.loads((compare_dir / row["run"] / runs.CONFIG_FILE).read_text())["config"]
    adam_steps = math.ceil(config["train_samples"] / config["batch_size"]) * config["epochs"]
    assert adam_steps == 3
    schedule = trainer.learning_rate_schedule(TrainConfig.from_dict(config), adam_steps)
    rates = [float(schedule(step)) if callable(schedule) else schedule
             for step in range(adam_steps)]
    np.testing.assert_allclose(change, change[0])  # lockstep: every filter moved alike
    # The first step moves by exactly its rate; the later ones by a little less (the gradient
    # changed, so Adam's m / sqrt(v) is below 1): 0.58% here against the rates' 0.60%.
    np.testing.assert_allclose(change, sum(rates), rtol=0.05)
    assert 0 < row["conv2_mean_relative_change"] < 0.1
    filters = after["conv1"].reshape(9, 32)
    np.testing.assert_allclose(filters, filters[:, :1].repeat(32, axis=1), rtol=1e-3)
    assert row["conv1_edge_likeness_initial"] == 0 < row["conv1_edge_likeness_final"]


def test_distinct_filters_tolerance_is_0_1_percent_of_the_norm_and_at_least_0_001():
    """docs/study.md's definition of "distinct filters"."""
    def two_filters(first, second):
        return np.stack([np.ravel(first), np.ravel(second)], axis=-1).reshape(3, 3, 1, 2)

    small = np.full(9, 0.1)  # norm 0.3: the absolute floor 0.001 applies
    assert analysis.distinct_filters(two_filters(small, small + 0.0009 / 3)) == 1
    assert analysis.distinct_filters(two_filters(small, small + 0.0012 / 3)) == 2
    large = np.full(9, 10.0)  # norm 30: 0.1% of it is 0.03
    assert analysis.distinct_filters(two_filters(large, large + 0.029 / 3)) == 1
    assert analysis.distinct_filters(two_filters(large, large + 0.031 / 3)) == 2


def test_a_filter_that_moved_from_exactly_0_shows_as_inf_not_a_blank_cell(tmp_path):
    run_dir = runs.create_run_dir(tmp_path / "runs", "zeros")
    zeros = {"conv1": np.zeros((3, 3, 1, 32), np.float32),
             "conv2": np.zeros((3, 3, 32, 32), np.float32)}
    atomic.write_npz_atomic(run_dir / runs.KERNELS_DIR / "initial.npz", zeros)
    moved = {**zeros, "conv1": np.full((3, 3, 1, 32), 0.01, np.float32)}
    atomic.write_npz_atomic(run_dir / runs.KERNELS_DIR / "final.npz", moved)
    training = plan.Training("zeros", 0, TrainConfig(), status=runs.STATUS_INTERRUPTED,
                             run_dir=run_dir)
    row, details = plan.measure(training, tmp_path)
    assert row["conv1_mean_relative_change"] == math.inf
    assert row["conv2_mean_relative_change"] == 0
    study = plan.Study(runs_dir=str(tmp_path), **TINY_STUDY)
    plan.write_summary(tmp_path, study, [row])
    with open(tmp_path / plan.SUMMARY_CSV, newline="") as handle:
        assert next(csv.DictReader(handle))["conv1_mean_relative_change"] == "inf"
    page.write_index(tmp_path, study, [(row, details)], 0.0, {})
    assert "<td>inf</td>" in (tmp_path / plan.INDEX_FILE).read_text()
    study_figures.plot_comparison([(row, details)], tmp_path / plan.FIGURE_FILE, study)


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


def _links(index: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', index)


def test_the_page_links_only_files_that_exist(sweep):
    compare_dir, rows, _ = sweep
    index = (compare_dir / plan.INDEX_FILE).read_text()
    targets = _links(index)
    assert plan.FIGURE_FILE in targets
    local = [target for target in targets if not target.startswith("data:")]
    assert len(local) > 10
    for target in local:
        assert "://" not in target and not target.startswith("/"), target
        assert (compare_dir / target).exists(), target
    for row in rows.values():
        assert f"{row['initializer']}, seed 0: {row['status']}" in index


def test_the_page_links_every_figure_and_animation_the_run_folders_hold(sweep):
    """Checked against the run folders, not the page: every finished run holds all its figures
    and its GIF, and every file in any run's figures/ is linked."""
    compare_dir, rows, _ = sweep
    index = (compare_dir / plan.INDEX_FILE).read_text()
    targets = set(_links(index))
    for row in rows.values():
        if row["run"] is None:
            continue
        held = sorted((compare_dir / row["run"] / runs.FIGURES_DIR).iterdir())
        if row["status"] == runs.STATUS_FINISHED:
            assert {path.name for path in held} >= RUN_FIGURES, row["initializer"]
        for path in held:
            assert Path(os.path.relpath(path, compare_dir)).as_posix() in targets, path
    assert "missing from" not in index


def test_the_page_reports_a_figure_missing_from_a_run_folder(tiny_study, tmp_path):
    compare_dir, rows = tiny_study.compare_dir, tiny_study.rows
    copy = shutil.copytree(compare_dir, tmp_path / "compare")
    figures = copy / rows["glorot_uniform"]["run"] / runs.FIGURES_DIR
    (figures / runs.HISTOGRAMS_FIGURE).unlink()
    (figures / runs.EVOLUTION_FIGURE).unlink()
    page.write_index(copy, dataclasses.replace(tiny_study.study, runs_dir=str(tmp_path)),
                     [(row, {}) for row in rows.values()], 0.0, {})
    index = (copy / plan.INDEX_FILE).read_text()
    section = index.split("<h3>glorot_uniform, seed 0: finished")[1].split("</section>")[0]
    assert (f"missing from figures/: {runs.EVOLUTION_FIGURE}, {runs.HISTOGRAMS_FIGURE}"
            in section)
    assert not [target for target in _links(section)
                if target.endswith((runs.EVOLUTION_FIGURE, runs.HISTOGRAMS_FIGURE))]
    assert index.count("missing from") == 1  # the other runs are whole


def test_tensorboard_logs_are_written_into_each_run(sweep):
    compare_dir, rows, _ = sweep
    logs = compare_dir / rows["glorot_uniform"]["run"] / "tensorboard"
    train_events = b"".join(path.read_bytes() for path in (logs / "train").glob("events.*"))
    for tag in (b"epoch_loss", b"conv1/kernel/histogram", b"conv1/kernel/image"):
        assert tag in train_events, tag  # scalars, weight histograms, conv1 as an image
    # The study trains the default recipe, validation slice included (the per-epoch accuracy
    # its page draws), so Keras writes validation events too.
    assert plan.Study().train_config("zeros", 0).validation_fraction > 0
    assert list((logs / "validation").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("changes, message", [
    (dict(jobs=0), "Invalid value for `jobs`: 0. Expected a whole number >= 1."),
    (dict(initializers=["glorot_unifrom"]), "Invalid value for `init`: 'glorot_unifrom'"),
    (dict(initializers=["zeros", "zeros"]), "Invalid value for `initializers`: 'zeros'"),
    (dict(seeds=[-1]), "Invalid value for `seed`: -1"),
    (dict(epochs=0), "Invalid value for `epochs`: 0"),
    (dict(target_accuracy=1.5), "Invalid value for `target_accuracy`: 1.5. Expected a number"),
])
def test_bad_settings_are_refused_before_anything_starts(tmp_path, changes, message):
    study = plan.Study(runs_dir=str(tmp_path / "runs"), **{**TINY_STUDY, **changes})
    with pytest.raises(ValueError, match=re.escape(message)):
        command.run_study(study, say=lambda line: None)
    assert not (tmp_path / "runs").exists()


def test_the_command_line_reports_bad_settings(tmp_path, capsys):
    assert cli.main(["compare", "--inits", "he_normall", "--runs-dir", str(tmp_path)]) == 2
    assert "Invalid value for `init`: 'he_normall'" in capsys.readouterr().err
    assert cli.main(["compare", "--full-grid", "--target-accuracy", "1.5", "--runs-dir",
                     str(tmp_path)]) == 2
    assert "Invalid value for `target_accuracy`: 1.5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match="Invalid value for `seeds`"):
        plan.Study(seeds=[]).validate()


def test_make_dash_j_sets_the_number_of_jobs():
    assert command.jobs_from_makeflags(" -j3 --jobserver-auth=3,4") == 3
    assert command.jobs_from_makeflags("") is None
    assert {"glorot_uniform", "zeros"} <= set(plan.study_initializers())


def _sigterm_pending(pid: int) -> bool:
    """Whether a SIGTERM waits for process `pid` (stopped, it cannot take it yet)."""
    return any(int(line.split()[1], 16) & 1 << (signal.SIGTERM - 1) for line in Path(
        f"/proc/{pid}/status").read_text().splitlines() if line[3:7] == "Pnd:")


@pytest.mark.parametrize("moment", ["training", "starting"])
def test_a_stopped_study_keeps_finished_rows_and_interrupts_the_running_one(tmp_path, moment):
    """A scheduler's SIGTERM (Ctrl-C and SIGHUP take the same code path) stops the sweep the
    way it stops a training: the running child saves its kernels and is `interrupted`,
    finished rows stay, the rest is `skipped`, and the exit code is 128+N. A child stopped while
    Python and TensorFlow were still starting had not trained: its row is `skipped` too.
    "training": its child is held (SIGSTOP) inside `fit` until the sweep passed it the SIGTERM."""
    import subprocess
    import time

    epochs = 5

    def second_training() -> int | None:  # the sweep's training child now running (jobs 1)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == process.pid and \
                        CHILD_MODULE in (stat.parent / "cmdline").read_text():
                    return int(stat.parent.name)

    def second_history_rows() -> int:
        return max((len(runs.read_history(run_dir)) for run_dir in
                    sorted((tmp_path / "runs").glob(f"compare-*/{plan.RUNS_SUBDIR}/*"))[1:]),
                   default=0)

    output = tmp_path / "compare.out"
    with open(output, "w") as handle:
        process = start_kexp("compare", "--inits", "glorot_uniform", "he_normal", "orthogonal",
                             "--seeds", "0", "--epochs", epochs, "--train-samples", "256",
                             "--jobs", "1", "--runs-dir", tmp_path / "runs", stdout=handle,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while "started  he_normal" not in output.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, output.read_text()
        time.sleep(0.05)
    # "starting": the child is importing TensorFlow (seconds); "training": it is in `fit`.
    child = held = None
    while moment == "training" and held is None:
        assert process.poll() is None and time.monotonic() < deadline, output.read_text()
        child = child or second_training()
        if child and second_history_rows() >= 1:
            os.kill(child, signal.SIGSTOP)
            held = child  # rows read while it is held: 1 to epochs - 1 is inside `fit`
            assert second_history_rows() < epochs, "its fit ended before it could be held"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    if held is not None:
        while not _sigterm_pending(held):  # the sweep passed the signal on: let it run
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.05)
        os.kill(held, signal.SIGCONT)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM, output.read_text()[-3000:]

    (compare_dir,) = (tmp_path / "runs").iterdir()
    rows = {row["initializer"]: row
            for row in json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]}
    assert rows["glorot_uniform"]["status"] == runs.STATUS_FINISHED
    assert rows["orthogonal"]["status"] == "skipped"
    if moment == "starting":
        assert rows["he_normal"]["status"] == "skipped", rows["he_normal"]["reason"]
        assert "while this training was starting" in rows["he_normal"]["reason"]
        return
    assert rows["he_normal"]["status"] == runs.STATUS_INTERRUPTED, rows["he_normal"]["reason"]
    assert "SIGTERM" in rows["he_normal"]["reason"]
    interrupted_run = Path(rows["he_normal"]["run"])
    if not interrupted_run.is_absolute():
        interrupted_run = compare_dir / interrupted_run
    assert (interrupted_run / runs.KERNELS_DIR / "interrupted.npz").is_file()


def _summary(compare_dir: Path) -> dict:
    return json.loads((compare_dir / plan.SUMMARY_JSON).read_text())


def test_per_epoch_measures_come_from_each_runs_files(tiny_study):
    """summary.json's series: epoch 0 (the initial kernels) to the last, read back from
    kernels/ and history.csv; the CSV keeps one row per training with the first epoch that
    reached the stated accuracy."""
    summary = _summary(tiny_study.compare_dir)
    series = {entry["initializer"]: entry for entry in summary["series"]}
    for init in ("glorot_uniform", "zeros", "ones"):
        row, found = tiny_study.rows[init], series[init]
        run_dir = tiny_study.compare_dir / row["run"]
        history = runs.read_history(run_dir)
        assert found["epoch"] == [0, 1]
        assert found["val_accuracy"] == [None, pytest.approx(history[0]["val_accuracy"],
                                                             abs=1e-6)]
        final = _kernels(tiny_study.compare_dir, row, runs.epoch_label(1))["conv1"]
        assert found["conv1_distinct"][-1] == analysis.distinct_filters(final)
        assert found["conv1_relative_change"][0] == 0
        reached = history[0]["val_accuracy"] >= tiny_study.study.target_accuracy
        assert row["epochs_to_target"] == (1 if reached else None)
        assert row["val_accuracy_epoch_1"] == row["val_accuracy_final"] == pytest.approx(
            history[0]["val_accuracy"], abs=1e-6)
    assert series["zeros"]["conv1_distinct"] == [1, 1]
    assert series["zeros"]["conv1_relative_change"] == [0, 0]
    assert series["zeros"]["conv1_edge_likeness"] == [0, 0]  # no pattern at all
    assert series["ones"]["conv1_edge_likeness"][0] == 0 < series["ones"]["conv1_edge_likeness"][1]
    assert series["glorot_uniform"]["conv1_distinct"] == [32, 32]
    assert series["he_normal"] == {"initializer": "he_normal", "seed": 0}  # it failed
    assert (tiny_study.compare_dir / plan.EPOCHS_FIGURE_FILE).stat().st_size > 0


def _differing(rows: list[dict], column: str) -> set[tuple[str, str]]:
    """The test's own count of which initializers differ by more than the seeds' spread."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row["status"] == "finished" and row["conv1_distinct_final"] != 1:
            values.setdefault(row["initializer"], []).append(row[column])
    found = set()
    for first, a in values.items():
        for second, b in values.items():
            gap = np.mean(a) - np.mean(b)
            if gap > 0 and gap > max(np.ptp(a), np.ptp(b)):
                found.add((first, second))
    return found


def _pairs_in(sentence: str) -> set[tuple[str, str]]:
    if "these differ" not in sentence:
        return set()
    named = sentence.split(": ", 1)[1].split(". Means", 1)[0]
    return {tuple(pair.split(" vs ")) for pair in named.split("; ")}


def test_the_page_states_the_verdict_of_its_own_rows(tiny_study):
    """One seed: the verdict says the spread is unknown; zeros and ones (one distinct filter
    each in these rows) are named as broken by symmetry, and the page prints every sentence."""
    from kexp.experiments.compare import verdict

    rows = _summary(tiny_study.compare_dir)["rows"]
    sentences = verdict.verdict(rows, tiny_study.study.target_accuracy, 1)
    broken = {row["initializer"] for row in rows
              if row["status"] == "finished" and row["conv1_distinct_final"] == 1}
    assert broken == {"zeros", "ones"}
    assert sentences[0].startswith("Broken by symmetry: zeros and ones ")
    early, end = (next(s for s in sentences if s.startswith(start))
                  for start in ("After epoch 1", "At the end"))
    for sentence in (early, end):
        assert "spread is unknown" in sentence and "glorot_uniform" in sentence
    assert "he_normal" not in early  # failed: no numbers to compare
    index = (tiny_study.compare_dir / plan.INDEX_FILE).read_text()
    for sentence in sentences:
        assert html.escape(sentence) in index


def _row(init, seed, early, end, distinct=32, reached=3):
    return {"initializer": init, "seed": seed, "status": "finished", "test_accuracy": end,
            "val_accuracy_epoch_1": early, "conv1_distinct_initial": 1 if distinct == 1 else 32,
            "conv1_distinct_final": distinct, "epochs_to_target": reached}


def _hand_made_rows(random_end=(0.95, 0.96, 0.955), ones_distinct=1):
    starts = {"glorot_uniform": ((0.90, 0.91, 0.92), (0.980, 0.982, 0.978)),
              "he_normal": ((0.93, 0.94, 0.95), (0.981, 0.979, 0.983)),
              "random_normal:stddev=1.0": ((0.60, 0.70, 0.65), random_end)}
    rows = [_row(init, seed, early[seed], end[seed])
            for init, (early, end) in starts.items() for seed in range(3)]
    rows += [_row("zeros", seed, 0.1, 0.1, distinct=1, reached=None) for seed in range(3)]
    rows += [_row("ones", seed, 0.11, 0.12, distinct=ones_distinct, reached=None)
             for seed in range(3)]
    ones = rows[-3:]
    for row in ones:
        row["conv1_distinct_initial"] = 1
    return rows


@pytest.mark.parametrize("changes", [
    {}, {"random_end": (0.981, 0.979, 0.98)}, {"ones_distinct": 32},
    {"random_end": (0.90, 0.99, 0.95)},
])
def test_the_verdict_sentences_agree_with_the_numbers(changes):
    """Hand-made rows with three seeds: the test recounts which initializers differ (a gap
    larger than both seed spreads), early and at the end, and which stay one filter, and the
    sentences must say the same; altering the numbers changes the sentences."""
    from kexp.experiments.compare import verdict

    rows = _hand_made_rows(**changes)
    sentences = verdict.verdict(rows, 0.96, 15)
    early, end = (next(s for s in sentences if s.startswith(start))
                  for start in ("After epoch 1", "At the end"))
    assert _pairs_in(early) == _differing(rows, "val_accuracy_epoch_1")
    assert _pairs_in(end) == _differing(rows, "test_accuracy")
    if not _differing(rows, "test_accuracy"):
        assert "no two initializers differ" in end
    broken = list(dict.fromkeys(row["initializer"] for row in rows  # in the rows' order
                                if row["conv1_distinct_final"] == 1))
    assert sentences[0].startswith(f"Broken by symmetry: {' and '.join(broken)} still")
    split = [s for s in sentences if "its symmetry was broken" in s]
    assert bool(split) == ("ones" not in broken)
    assert "spread is unknown" not in " ".join(sentences)
    assert sentences[-1].startswith("Epochs to reach validation accuracy 0.96")
    assert "zeros never" in sentences[-1] and "he_normal 3, 3, 3" in sentences[-1]
