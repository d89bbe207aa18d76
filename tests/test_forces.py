"""kexp.filter_gradients as a script calls it, and the forces every run records: the per-class
gradients add up to the full-batch gradient (a nested model too), a step along the summed push
lowers the loss, a run writes views/forces.npz on training digits and draws forces.png, and a
run whose forces file is missing or damaged is still drawn, with a note."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import kexp

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from kexp.digits import data, inputs  # noqa: E402
from kexp.network import conv_layers
from kexp.storage import runs
from kexp.training import forces
from kexp.views import force_figures, plots

DIGITS = 200


@pytest.fixture(scope="module")
def digits():
    dataset = data.load("mnist-5k")
    return data.to_model_inputs(dataset.x_train[:DIGITS]), dataset.y_train[:DIGITS]


def nested_model():
    """conv1 on the image, then a Sequential block holding a second Conv2D, in a functional
    model."""
    keras.utils.set_random_seed(1)
    block = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                              keras.layers.MaxPooling2D(2)], name="block")
    image = keras.Input((28, 28, 1))
    hidden = block(keras.layers.Conv2D(3, 3, activation="relu", name="conv1")(image))
    output = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hidden))
    model = keras.Model(image, output)
    model.compile(loss="sparse_categorical_crossentropy")
    return model


def mean_loss(model, x, y) -> float:
    return float(np.mean(keras.losses.sparse_categorical_crossentropy(y, model(x))))


def test_per_class_gradients_sum_to_the_full_batch_gradient_of_a_nested_model(digits):
    x, y = digits
    model = nested_model()
    found = kexp.filter_gradients(model, x, y, by="class")
    assert list(found) == ["conv1", "block/conv"]  # the paths KernelSnapshots uses
    assert found["block/conv"].shape == (10, 3, 3, 3, 4)
    layers = conv_layers.conv_layers(model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    full = tape.gradient(loss, [layer.kernel for layer in layers.values()])
    for (path, per_class), expected in zip(found.items(), full):
        expected = np.asarray(expected, dtype=np.float64)
        error = np.linalg.norm(per_class.sum(axis=0) - expected) / np.linalg.norm(expected)
        assert error <= 1e-5, (path, error)
        for label in range(10):  # each row is its class's part alone
            if not np.any(y == label):
                assert not per_class[label].any()


def test_a_small_step_along_the_summed_push_lowers_the_loss(digits):
    x, y = digits
    model = nested_model()
    pushes = {path: -array.sum(axis=0)
              for path, array in kexp.filter_gradients(model, x, y).items()}
    before = mean_loss(model, x, y)
    for path, layer in conv_layers.conv_layers(model).items():
        layer.kernel.assign(layer.kernel.numpy() + 0.05 * pushes[path])
    assert mean_loss(model, x, y) < before


def test_filter_gradients_refuses_a_bad_split_and_bad_labels(digits):
    x, y = digits
    model = nested_model()
    with pytest.raises(ValueError, match=r"Invalid value for `by`: 'digit'\. Expected one of: "
                                         r"class\."):
        kexp.filter_gradients(model, x, y, by="digit")
    with pytest.raises(ValueError, match="Invalid value for `y`"):
        kexp.filter_gradients(model, x, y.astype(float))
    with pytest.raises(ValueError, match="Invalid value for `layers`: \\['conv9'\\]"):
        kexp.filter_gradients(model, x, y, layers=["conv9"])


def test_a_run_records_forces_on_training_digits_and_draws_them(trained_run):
    config = runs.read_config(trained_run)
    found = force_figures.read_forces(trained_run)
    assert list(found["epochs"]) == forces.moment_epochs(config.epochs) == [0, 1, 2]
    assert set(found["gradients"]) == {"conv1", "conv2"}
    assert found["gradients"]["conv1"].shape == (3, 10, 3, 3, 1, 32)
    with np.load(trained_run / runs.VIEWS_DIR / runs.FORCES_FILE) as arrays:
        sample, counts = arrays[force_figures.SAMPLE_KEY], arrays[force_figures.COUNTS_KEY]
    prepared, _ = inputs.prepare_data(config)  # the digits the run trained on, never the test's
    assert sample.max() < len(prepared.y_train)
    np.testing.assert_array_equal(np.bincount(prepared.y_train[sample], minlength=10), counts)
    assert (trained_run / runs.FIGURES_DIR / runs.FORCES_FIGURE).is_file()


@pytest.mark.parametrize("damage", ["missing", "garbage", "no conv1"])
def test_a_run_without_a_readable_forces_file_is_drawn_with_a_note(trained_run, tmp_path,
                                                                   capsys, damage):
    run_dir = tmp_path / trained_run.name
    shutil.copytree(trained_run, run_dir)
    forces_file = run_dir / runs.VIEWS_DIR / runs.FORCES_FILE
    figure = run_dir / runs.FIGURES_DIR / runs.FORCES_FIGURE
    figure.unlink()
    if damage == "missing":
        forces_file.unlink()
    elif damage == "garbage":
        forces_file.write_bytes(b"not an npz archive")
    else:
        with np.load(forces_file) as arrays:
            kept = {key: arrays[key] for key in arrays.files if not key.endswith("conv1")}
        np.savez(forces_file, **kept)
    written = plots.render_run(run_dir)
    assert runs.CONV1_FIGURE in [path.name for path in written]
    assert not figure.exists()
    note = capsys.readouterr().err
    assert f"kexp: note: {runs.FORCES_FIGURE} not drawn" in note
    assert str(forces_file) in note or runs.FORCES_FILE in note
