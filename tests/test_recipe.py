"""The default training recipe: augmentation of training batches only, a learning-rate schedule
that a resumed run continues, and validation that never reads the test digits; and a training
whose end skips the figures (--no-figures)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kexp.config import TrainConfig
from kexp.storage import runs

from helpers import run_python

# 300 training digits, so that a validation fraction of 0.1 or 0.2 is a whole 30 or 60, and all
# the test digits, none of which validation may take.
RECIPE_RUN = dict(data="mnist-5k", train_samples=300, batch_size=64, seed=5, epochs=1)


def _batches(augmentation, first_epoch=0, epochs=2, seed=1):
    from kexp.digits.inputs import epoch_batches

    images = np.random.default_rng(0).random((48, 28, 28, 1), dtype=np.float32)
    labels = np.arange(48)
    return [(x.numpy(), y.numpy())
            for x, y in epoch_batches(images, labels, 16, seed, first_epoch, epochs, augmentation)]


def test_augmentation_transforms_each_batch_reproducibly_and_resume_replays_it():
    strong = {"rotation_degrees": 15.0, "shift_fraction": 0.1, "zoom_fraction": 0.1}
    plain = _batches(None)
    augmented = _batches(strong)
    assert [y.tolist() for _, y in augmented] == [y.tolist() for _, y in plain]  # same order
    assert all(not np.allclose(a, p) for (a, _), (p, _) in zip(augmented, plain))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(augmented, _batches(strong)))
    # A resumed run (starting at epoch 1) sees exactly the augmented batches of epoch 1.
    per_epoch = len(augmented) // 2
    assert all(np.array_equal(a, b)
               for (a, _), (b, _) in zip(augmented[per_epoch:], _batches(strong, first_epoch=1)))
    assert not np.array_equal(augmented[0][0], _batches(strong, seed=2)[0][0])
    # Zero strength is the identity: the transform itself adds nothing.
    zero = {"rotation_degrees": 0.0, "shift_fraction": 0.0, "zoom_fraction": 0.0}
    assert all(np.array_equal(a, p) for (a, _), (p, _) in zip(_batches(zero), plain))


def test_cosine_schedule_decays_over_the_planned_steps_with_optional_warmup():
    from kexp.training.trainer import learning_rate_schedule

    config = TrainConfig(epochs=10, learning_rate=0.004, schedule="cosine")
    schedule = learning_rate_schedule(config, steps_per_epoch=20)
    assert float(schedule(0)) == pytest.approx(0.004)
    assert float(schedule(100)) == pytest.approx(0.002, rel=1e-4)  # half way: half the peak
    assert float(schedule(200)) == pytest.approx(0.0, abs=1e-9)
    warm = learning_rate_schedule(TrainConfig(epochs=10, learning_rate=0.004, warmup_epochs=2), 20)
    assert float(warm(0)) == pytest.approx(0.0, abs=1e-9)
    assert float(warm(40)) == pytest.approx(0.004)
    assert float(warm(200)) == pytest.approx(0.0, abs=1e-9)
    assert learning_rate_schedule(TrainConfig(schedule="constant", learning_rate=0.01), 20) == 0.01


def test_validation_is_a_stratified_slice_of_the_training_digits():
    from kexp.digits.inputs import prepare_data

    prepared, summary = prepare_data(TrainConfig(**{**RECIPE_RUN, "validation_fraction": 0.2}))
    assert len(prepared.x_validation) == summary["used_validation_samples"] == 60
    assert len(prepared.x_train) == summary["used_train_samples"] == 240
    assert len(summary["validation_indices"]) == 60
    counts = np.bincount(prepared.y_validation, minlength=10)
    expected = 0.2 * np.bincount(np.concatenate([prepared.y_train, prepared.y_validation]),
                                 minlength=10)
    assert np.all(np.abs(counts - expected) <= 1)
    test_rows = {image.tobytes() for image in prepared.x_test}
    train_rows = {image.tobytes() for image in prepared.x_train}
    for image in prepared.x_validation:
        assert image.tobytes() not in test_rows and image.tobytes() not in train_rows
    none, summary = prepare_data(TrainConfig(**{**RECIPE_RUN, "validation_fraction": 0.0}))
    assert len(none.x_validation) == 0 and summary["validation_indices"] == []


@pytest.fixture(scope="module")
def no_figures_run(tmp_path_factory) -> Path:
    """`kexp train --no-figures` (cli.main, in this process) at RECIPE_RUN with 100 test digits:
    the no-figures test's run, and the validation test's first run (no test reads its figures,
    which are drawn after training anyway)."""
    from kexp import cli

    runs_dir = tmp_path_factory.mktemp("no-figures") / "runs"
    options = [word for key, value in RECIPE_RUN.items()
               for word in (f"--{key.replace('_', '-')}", str(value))]
    assert cli.main(["train", "--no-figures", *options, "--test-samples", "100",
                     "--runs-dir", str(runs_dir)]) == 0
    (run_dir,) = runs_dir.iterdir()
    return run_dir


@pytest.mark.slow
def test_validation_metrics_do_not_depend_on_the_test_digits(no_figures_run, tmp_path):
    """Two runs that differ only in their test digits log the same val_* numbers: validation
    reads training digits only; the test digits change nothing but the final test score."""
    from kexp.training.trainer import train

    run_a = no_figures_run  # 100 test digits
    run_b = train(TrainConfig(runs_dir=str(tmp_path / "b"), test_samples=400, figures=False,
                              **RECIPE_RUN), verbose=0)
    history_a, history_b = runs.read_history(run_a), runs.read_history(run_b)
    assert "val_accuracy" in history_a[0]
    for key in ("val_loss", "val_accuracy", "loss"):
        assert history_a[0][key] == pytest.approx(history_b[0][key], abs=1e-6)
    recorded = runs.read_json(run_a / runs.CONFIG_FILE)["data"]
    assert recorded["used_test_samples"] == 100 and recorded["used_validation_samples"] == 30
    assert "once after training" in recorded["test"]


# Resume with the default recipe (augmentation, a cosine schedule, here with a warm-up epoch),
# and from other starts than glorot_uniform: kexp's own initializers (drawn from the data,
# designed), a parametrised one, conv2's own initializer and a frozen layer. One process (one
# TensorFlow start-up; --deterministic is for the whole process) trains every case straight and
# interrupted-then-resumed (a callback raises KeyboardInterrupt at the end of epoch 1, as Ctrl-C
# would); --deterministic makes the two bit-comparable. No test here reads the runs' figures, so
# they end without them (figures=False).
AUGMENTED_SCHEDULED = "augmented, cosine with a warm-up epoch"
RESUME_CASES = {
    AUGMENTED_SCHEDULED: {"epochs": 3, "warmup_epochs": 1},
    "image_patches": {"init": "image_patches"},
    "sobel_x, conv1 frozen": {"init": "sobel_x", "freeze": ["conv1"]},
    "random_normal:stddev=0.05, --init-conv2 orthogonal": {
        "init": "random_normal:stddev=0.05", "init_conv2": "orthogonal"},
}
RESUME_VARIANTS = {name: changes for name, changes in RESUME_CASES.items()
                   if name != AUGMENTED_SCHEDULED}

RESUME_SCRIPT = """
import json, sys, keras
from kexp.config import TrainConfig
from kexp.training.trainer import TrainingInterrupted, resume, train

root, cases = sys.argv[1], json.loads(sys.argv[2])

class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt

found = {}
for number, (name, changes) in enumerate(cases.items()):
    found[name] = {}
    for way in ("straight", "resumed"):
        config = TrainConfig(**{**dict(data="mnist-5k", train_samples=256, test_samples=64,
                                       batch_size=64, epochs=2, seed=11, deterministic=True,
                                       figures=False, runs_dir=f"{root}/{number}-{way}"),
                                **changes})
        assert config.augment and config.schedule == "cosine"
        try:
            run_dir = train(config, verbose=0,
                            extra_callbacks=[StopAfterFirstEpoch()] if way == "resumed" else [])
        except TrainingInterrupted as interrupted:
            run_dir = resume(interrupted.run_dir, verbose=0)
        found[name][way] = str(run_dir)
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def resumed_variants(tmp_path_factory):
    """Every case of RESUME_CASES, trained straight and resumed: {case: {way: run folder}}."""
    root = tmp_path_factory.mktemp("resume-variants")
    result = run_python(RESUME_SCRIPT, root, json.dumps(RESUME_CASES), timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: {way: Path(path) for way, path in ways.items()}
            for name, ways in json.loads(result.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.slow
def test_resumed_augmented_scheduled_run_ends_bit_identical_to_an_uninterrupted_one(
        resumed_variants):
    finals = {}
    for name, run_dir in resumed_variants[AUGMENTED_SCHEDULED].items():
        finals[name] = runs.load_kernels(run_dir / runs.KERNELS_DIR / "final.npz")
        history = runs.read_history(run_dir)
        assert [row["epoch"] for row in history] == [1, 2, 3]
        if name == "resumed":
            # the first attempt's interrupted kernels, kept out of the training sequence
            assert (run_dir / runs.KERNELS_DIR /
                    runs.snapshot_name(runs.archived_interrupted_label(1))).exists()
            recorded = json.loads((run_dir / runs.CONFIG_FILE).read_text())["config"]
            assert recorded["augment"] is True and recorded["warmup_epochs"] == 1
    assert set(finals) == {"straight", "resumed"}
    for layer in ("conv1", "conv2"):
        assert finals["straight"][layer].tobytes() == finals["resumed"][layer].tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(RESUME_VARIANTS))
def test_resume_is_bit_identical_for_other_starts_and_a_frozen_layer(resumed_variants, variant):
    runs_of = resumed_variants[variant]
    kernels = {way: {label: runs.load_kernels(run_dir / runs.KERNELS_DIR / f"{label}.npz")
                     for label in ("initial", "final")} for way, run_dir in runs_of.items()}
    resumed = runs_of["resumed"]
    assert (resumed / runs.KERNELS_DIR /
            runs.snapshot_name(runs.archived_interrupted_label(1))).exists()
    assert runs.read_status(resumed)["status"] == runs.STATUS_FINISHED
    assert [row["epoch"] for row in runs.read_history(resumed)] == [1, 2]
    recorded = runs.read_config(resumed).to_dict()
    for key, value in RESUME_VARIANTS[variant].items():
        assert recorded[key] == value, key
    for label in ("initial", "final"):
        for layer in ("conv1", "conv2"):
            assert kernels["straight"][label][layer].tobytes() == \
                kernels["resumed"][label][layer].tobytes(), (label, layer)
    for layer in RESUME_VARIANTS[variant].get("freeze", []):
        assert np.array_equal(kernels["resumed"]["initial"][layer],
                              kernels["resumed"]["final"][layer]), layer


def test_resume_trims_a_history_row_cut_short_by_a_crash(tmp_path):
    """A hard kill while epoch 2's row is being appended leaves it cut short (no line end); the
    checkpoint is still epoch 1's, so the resumed run drops that row and appends whole ones."""
    from kexp.training.trainer import trim_history

    header, row = "epoch,seconds,loss\r\n", "1,0.5,2.25\r\n"
    for torn in ("2,0.4", "2,0.41,1.9", ""):
        (tmp_path / runs.HISTORY_FILE).write_text(header + row + torn, newline="")
        trim_history(tmp_path, 1)
        with open(tmp_path / runs.HISTORY_FILE, newline="") as handle:
            assert handle.read() == header + row, torn
    (tmp_path / runs.HISTORY_FILE).write_text("epoch,sec", newline="")  # a torn header
    trim_history(tmp_path, 0)
    assert (tmp_path / runs.HISTORY_FILE).read_text() == ""


@pytest.mark.slow
def test_no_figures_ends_without_the_figures_and_the_page_and_visualize_draws_them(
        no_figures_run, capsys):
    from kexp import cli

    run_dir, runs_dir = no_figures_run, no_figures_run.parent
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED and "figures" not in status
    assert runs.read_config(run_dir).figures is False
    assert (run_dir / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).is_file()  # computed as always
    assert not list((run_dir / runs.FIGURES_DIR).iterdir())
    assert not (run_dir / runs.PAGE_FILE).exists()
    capsys.readouterr()
    assert cli.main(["visualize", "--runs-dir", str(runs_dir), run_dir.name]) == 0
    assert len(list((run_dir / runs.FIGURES_DIR).glob("*.png"))) == 8
    assert (run_dir / runs.PAGE_FILE).is_file()
