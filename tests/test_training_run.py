"""What a training run leaves behind: the run folder, kernel snapshots, history and status."""

import json

import numpy as np
import pytest

from kexp import shell_commands
from kexp.config import MODEL_NAMES, ConfigError, TrainConfig
from kexp.digits import data
from kexp.network.models import DEFAULT_CONV2_FILTERS
from kexp.storage import runs


def test_run_folder_is_complete(trained_run):
    for name in ["config.json", "status.json", "history.csv", "model.keras"]:
        assert (trained_run / name).is_file(), name
    kernels = sorted(p.name for p in (trained_run / "kernels").iterdir())
    assert kernels == ["epoch_001.npz", "epoch_002.npz", "final.npz", "initial.npz"]
    figures = sorted(p.name for p in (trained_run / "figures").iterdir())
    assert figures == ["conv1_before_after.png", "conv2_before_after.png", "conv2_summary.png",
                       "feature_maps.png", "forces.png", "histograms.png", "optimal_inputs.png",
                       "top_patches.png"]
    views = sorted(p.name for p in (trained_run / "views").iterdir())
    assert views == ["forces.npz", "optimal_inputs.npz", "probe_digits.npz"]
    assert not list(trained_run.rglob("*.tmp*")) and not (trained_run / "checkpoint").exists()


def test_kernels_have_keras_layout_and_training_changed_them(trained_run):
    before = runs.load_kernels(trained_run / "kernels" / "initial.npz")
    after = runs.load_kernels(trained_run / "kernels" / "final.npz")
    assert before["conv1"].shape == after["conv1"].shape == (3, 3, 1, 32)
    conv2_filters = DEFAULT_CONV2_FILTERS[TrainConfig().model]  # the fixture's default model
    assert before["conv2"].shape == (3, 3, 32, conv2_filters)
    assert before["conv1"].dtype == np.float32
    assert not np.array_equal(before["conv1"], after["conv1"])
    limit = np.sqrt(6 / (9 + 288))  # glorot_uniform, the default
    assert np.abs(before["conv1"]).max() <= limit


def test_final_snapshot_matches_the_saved_model(trained_run):
    import keras

    model = keras.saving.load_model(trained_run / "model.keras")
    final = runs.load_kernels(trained_run / "kernels" / "final.npz")
    assert np.array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel),
                          final["conv1"])


def test_status_history_and_config_record_the_run(trained_run, tiny_config_values):
    status = runs.read_status(trained_run)
    assert status["status"] == "finished"
    history = runs.read_history(trained_run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history[0])
    recorded = json.loads((trained_run / "config.json").read_text())
    assert recorded["config"]["seed"] == tiny_config_values["seed"]
    assert recorded["data"]["source"] == "mnist-5k"
    # --train-samples digits, of which a stratified 10% validate (never the test digits).
    assert recorded["data"]["used_train_samples"] + recorded["data"]["used_validation_samples"] \
        == 256 and recorded["data"]["used_validation_samples"] == 26
    assert recorded["versions"]["keras"].startswith("3.")
    assert TrainConfig.from_dict(recorded["config"]).validate() == TrainConfig(
        **{**TrainConfig().to_dict(), **recorded["config"]})


def test_recorded_test_accuracy_is_what_the_saved_model_scores_on_the_runs_test_digits(
        trained_run):
    """status.json's test accuracy, recomputed: the saved model's answers on the test digits
    that the run's own config.json selects, and better than always answering the most frequent
    class of those digits."""
    from kexp.digits import inputs
    from kexp.network import saving

    recorded = json.loads((trained_run / runs.CONFIG_FILE).read_text())
    prepared, _ = inputs.prepare_data(TrainConfig.from_dict(recorded["config"]))
    assert len(prepared.y_test) == recorded["data"]["used_test_samples"] == 128
    model = saving.load_model(trained_run / runs.MODEL_FILE)
    answers = model.predict(data.to_model_inputs(prepared.x_test), verbose=0).argmax(axis=1)
    recomputed = float(np.mean(answers == prepared.y_test))
    assert runs.read_status(trained_run)["test_accuracy"] == pytest.approx(recomputed, abs=1e-6)
    assert recomputed > np.bincount(prepared.y_test).max() / len(prepared.y_test)


def test_learning_reduces_the_loss(trained_run):
    history = runs.read_history(trained_run)
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, r"Invalid value for `epochs`: 0\. Expected a whole number >= 1"),
    ({"epochs": 1.5}, r"Invalid value for `epochs`: 1\.5"),
    ({"batch_size": 0}, r"Invalid value for `batch_size`: 0"),
    ({"batch_size": -5}, r"Invalid value for `batch_size`: -5"),
    ({"model": "vgg"}, r"Invalid value for `model`: 'vgg'"),
    ({"learning_rate": -1.0}, r"Invalid value for `learning_rate`: -1\.0"),
    ({"freeze": ["conv9"]}, r"Invalid value for `freeze`: 'conv9'"),
    ({"init_conv2": "nope"}, r"Invalid value for `init_conv2`: 'nope'"),
    # the recipe's settings
    ({"schedule": "linear"}, r"Invalid value for `schedule`: 'linear'\. Expected one of: cosine"),
    ({"rotation_degrees": -5.0}, r"Invalid value for `rotation_degrees`: -5\.0"),
    ({"shift_fraction": float("nan")}, r"Invalid value for `shift_fraction`: nan"),
    ({"zoom_fraction": 1.5}, r"Invalid value for `zoom_fraction`: 1\.5\. Expected a number from"),
    ({"augment": "yes"}, r"Invalid value for `augment`: 'yes'\. Expected true or false"),
    ({"validation_fraction": 0.9}, r"Invalid value for `validation_fraction`: 0\.9"),
    ({"warmup_epochs": 5, "epochs": 5}, r"Invalid value for `warmup_epochs`: 5\. Expected fewer"),
    ({"warmup_epochs": -1}, r"Invalid value for `warmup_epochs`: -1"),
])
def test_bad_settings_fail_before_anything_is_created(tmp_path, changes, message):
    from kexp.training.trainer import train

    runs_dir = tmp_path / "runs"
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(runs_dir=str(runs_dir), data="mnist-5k", **changes))
    assert not runs_dir.exists()


def test_every_epoch_has_its_own_order_and_a_seed_repeats_them():
    from kexp.digits.inputs import epoch_batches

    images = np.arange(40, dtype=np.float32).reshape(40, 1)
    labels = np.arange(40)

    def orders(seed, first_epoch=0):
        batches = [b[1].numpy() for b in epoch_batches(images, labels, 40, seed, first_epoch, 3)]
        return [batch.tolist() for batch in batches]

    first = orders(seed=1)
    assert len(first) == 3 and all(sorted(order) == list(range(40)) for order in first)
    assert first[0] != first[1] != first[2]  # a seeded fit(shuffle=True) would repeat one order
    assert orders(seed=1) == first
    assert orders(seed=1, first_epoch=1) == first[1:]  # a resumed run sees the same orders
    assert orders(seed=2) != first


FIGURES = sorted([runs.CONV1_FIGURE, runs.CONV2_FIGURE, runs.CONV2_SUMMARY_FIGURE,
                  runs.HISTOGRAMS_FIGURE, runs.FEATURE_MAPS_FIGURE, runs.TOP_PATCHES_FIGURE,
                  runs.OPTIMAL_INPUTS_FIGURE, runs.FORCES_FIGURE])


def assert_all_figures(run_dir) -> None:
    """A finished run with every figure drawn (none a near-empty picture) and no figures_error."""
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED and "figures_error" not in status
    assert sorted(status["figures"]) == FIGURES
    for name in FIGURES:
        assert (run_dir / runs.FIGURES_DIR / name).stat().st_size > 10_000, name


def test_a_normal_run_has_its_figures_and_no_figures_error(trained_run):
    """trained_run is a run of the default model kind: its figures are that kind's."""
    assert runs.read_config(trained_run).model == TrainConfig().model
    assert_all_figures(trained_run)


@pytest.mark.slow
@pytest.mark.parametrize("model", [name for name in MODEL_NAMES if name != TrainConfig().model])
def test_every_model_kind_gets_all_its_figures(tmp_path, model):
    """Every other model kind (the default's is trained_run's), on one epoch without
    validation."""
    from kexp.training.trainer import train

    run_dir = train(TrainConfig(model=model, data="mnist-5k", train_samples=64, test_samples=32,
                                batch_size=32, epochs=1, validation_fraction=0.0,
                                runs_dir=str(tmp_path)), verbose=0)
    assert_all_figures(run_dir)


@pytest.mark.slow
def test_a_run_whose_figures_fail_is_finished_but_loud(tmp_path, monkeypatch, capsys):
    """The run itself is complete (model, kernels, history), so it stays `finished`, and
    --resume would retrain it: its status.json has `figures_error`, `kexp train` exits 1 and
    `kexp runs` flags it. (A full disk is not a drawing problem: tests/test_disk_full.py.)"""
    from kexp import cli
    from kexp.views import plots

    def fail(run_dir, *rest):
        raise RuntimeError("matplotlib has no usable font cache")

    monkeypatch.setattr(plots, "render_run", fail)
    runs_dir = tmp_path / "runs"
    code = cli.main(["train", "--data", "mnist-5k", "--train-samples", "64", "--test-samples",
                     "32", "--epochs", "1", "--model", "convnet", "--runs-dir", str(runs_dir)])
    err = capsys.readouterr().err
    assert code == 1, err
    (run_dir,) = runs.list_runs(runs_dir)
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED
    assert "no usable font cache" in status["figures_error"]
    assert "were not drawn" in err and "no usable font cache" in err
    assert shell_commands.visualize_command(run_dir) in err  # a command that works when pasted
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if run_dir.name in line)
    assert "finished" in line and "FIGURES NOT DRAWN" in line
