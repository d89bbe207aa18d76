"""What each filter responds to: feature maps replayed from snapshots equal Keras' own outputs,
receptive fields are exact, strongest patches are cut where the filter fired, optimal inputs
are reproducible, and the public API works on a user's own nested model."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import kexp  # noqa: E402
from kexp.experiments import explain  # noqa: E402
from kexp.network import conv_layers
from kexp.network.models import build_model  # noqa: E402
from kexp.probes import filter_views, keras_views  # noqa: E402
from kexp.storage import atomic, runs

TOLERANCE = 1e-5


def digits(count=12, seed=0):
    """Real test digits from the bundled subset, as model inputs."""
    from kexp.digits import data

    dataset = data.load("mnist-5k")
    chosen = np.random.default_rng(seed).choice(len(dataset.x_test), count, replace=False)
    return data.to_model_inputs(dataset.x_test[chosen])


def model_with_biases(name, seed=0):
    """One of kexp's models with random (nonzero) conv biases, so the bias path is tested."""
    model = build_model(name, seed=seed, compile=False)
    rng = np.random.default_rng(seed)
    for layer in conv_layers.conv_layers(model).values():
        layer.bias.assign(rng.normal(0, 0.05, layer.filters).astype(np.float32))
    return model


def keras_layer_output(model, name, images):
    """The layer's output through Keras' own graph (independent of kexp's recording)."""
    probe = keras.Model(model.inputs, model.get_layer(name).output)
    return keras.ops.convert_to_numpy(probe([images], training=False))


def test_snapshot_maps_equal_the_saved_models_layer_outputs(trained_run):
    images = filter_views.read_probe_digits(trained_run)[0]
    model = keras.saving.load_model(trained_run / runs.MODEL_FILE)
    replayed = kexp.feature_maps(trained_run, images)  # numpy, from kernels/final.npz
    for layer in ("conv1", "conv2"):
        expected = keras_layer_output(model, layer, images)
        assert replayed[layer].shape == expected.shape
        np.testing.assert_allclose(replayed[layer], expected, atol=TOLERANCE)
        assert expected.max() > 0.1  # real, non-trivial activations


@pytest.mark.parametrize("name", ["mnist_cnn", "convnet", "convnet_dense"])
def test_every_model_kind_replays_exactly_and_recording_matches_keras(name):
    model, images = model_with_biases(name), digits()
    replayed = filter_views.snapshot_feature_maps(name, conv_layers.conv_kernels(model),
                                                  conv_layers.conv_biases(model), images)
    recorded = kexp.feature_maps(model, images)
    for layer in ("conv1", "conv2"):
        expected = keras_layer_output(model, layer, images)
        np.testing.assert_allclose(replayed[layer], expected, atol=TOLERANCE)
        np.testing.assert_allclose(recorded[layer], expected, atol=TOLERANCE)


@pytest.mark.parametrize("name, conv2_field", [("mnist_cnn", 5), ("convnet", 8),
                                               ("convnet_dense", 8)])
def test_receptive_fields_are_exactly_the_pixels_a_unit_sees(name, conv2_field):
    model = model_with_biases(name)
    fields = filter_views.receptive_fields(keras_views.keras_stages(model), 28)
    assert fields == filter_views.receptive_fields(
        filter_views.run_stages(name, conv_layers.conv_kernels(model)), 28)
    assert (fields["conv1"].size, fields["conv2"].size) == (3, conv2_field)
    image = digits(1)
    base = keras_layer_output(model, "conv2", image)
    row = col = 2
    field = fields["conv2"]
    top, left = field.start + field.jump * row, field.start + field.jump * col
    inside = np.zeros((28, 28), bool)
    inside[top:top + field.size, left:left + field.size] = True
    outside_changed = image.copy()
    outside_changed[0, ~inside, 0] = np.random.default_rng(1).random((~inside).sum())
    assert np.array_equal(keras_layer_output(model, "conv2", outside_changed)[0, row, col],
                          base[0, row, col])
    for corner in ((top, left), (top + field.size - 1, left + field.size - 1)):
        changed = image.copy()
        changed[(0, *corner, 0)] += 5.0  # a pixel at the field's edge reaches the unit
        assert not np.allclose(keras_layer_output(model, "conv2", changed)[0, row, col],
                               base[0, row, col])


def test_receptive_fields_follow_strides_and_same_padding():
    stages = [filter_views.Stage("conv", "a", 3, 1, "same"),
              filter_views.Stage("pool", "p", 2, 2),
              filter_views.Stage("conv", "b", 5, 2, "same")]
    fields = filter_views.receptive_fields(stages, 28)
    assert fields["a"] == filter_views.Field(3, 1, -1)
    # b: 14 -> 7 outputs with stride 2 pad 3 in all, 1 before, in pixels of jump 2
    assert fields["b"] == filter_views.Field(2 + 2 + 4 * 2, 4, -1 - 1 * 2)


def test_strongest_patches_are_cut_where_each_filter_fired_one_per_image():
    model, images = model_with_biases("convnet"), digits(20)
    found = kexp.top_patches(model, images, k=5)
    maps = kexp.feature_maps(model, images)
    field = filter_views.receptive_fields(keras_views.keras_stages(model), 28)["conv2"]
    top = found["conv2"]
    assert top.patches.shape == (64, 5, 8, 8, 1)
    for f in (0, 17, 63):
        assert len(set(top.images[f])) == 5  # five different digits
        assert np.all(np.diff(top.scores[f]) <= 0)  # strongest first
        assert top.scores[f, 0] == pytest.approx(maps["conv2"][..., f].max())
        row, col = top.corners[f, 0]
        np.testing.assert_array_equal(
            top.patches[f, 0], images[top.images[f, 0], row:row + 8, col:col + 8])
        assert (row - field.start) % field.jump == 0


def test_probe_digits_are_reproducible_one_per_class_first(trained_run):
    labels = np.repeat(np.arange(10), 30)
    first = filter_views.probe_indices(labels)
    assert np.array_equal(first, filter_views.probe_indices(labels))
    assert list(labels[first[filter_views.first_of_each_class(labels[first])]]) == list(range(10))
    assert np.bincount(labels[first]).tolist() == [filter_views.PROBES_PER_CLASS] * 10
    images, probe_labels = filter_views.read_probe_digits(trained_run)
    assert images.shape[1:] == (28, 28, 1) and 0 <= images.min() and images.max() <= 1
    assert set(probe_labels) <= set(range(10))


def test_snapshots_keep_biases_apart_from_kernels(trained_run, tmp_path):
    final = trained_run / runs.KERNELS_DIR / runs.snapshot_name(runs.FINAL)
    model = keras.saving.load_model(trained_run / runs.MODEL_FILE)
    assert sorted(runs.load_kernels(final)) == ["conv1", "conv2"]
    biases = runs.load_biases(final)
    for layer, bias in conv_layers.conv_biases(model).items():
        np.testing.assert_array_equal(biases[layer], bias)
    initial = runs.load_biases(trained_run / runs.KERNELS_DIR / "initial.npz")
    assert all(not bias.any() for bias in initial.values())  # zeros, as the models start
    path = atomic.write_npz_atomic(tmp_path / "x.npz", {
        "block/bias": np.ones((3, 3, 1, 2), np.float32),
        "conv1": np.ones((3, 3, 1, 4), np.float32)})
    assert sorted(runs.load_kernels(path)) == ["block/bias", "conv1"]  # a layer named "bias"
    assert runs.load_biases(path) == {}


def test_optimal_inputs_are_seeded_normed_and_raise_their_filter():
    model = model_with_biases("convnet")
    first = kexp.optimal_inputs(model, layers=["conv1"], steps=12, seed=3, nonnegative=True)
    again = kexp.optimal_inputs(model, layers=["conv1"], steps=12, seed=3, nonnegative=True)
    start = kexp.optimal_inputs(model, layers=["conv1"], steps=1, seed=3, nonnegative=True)
    images = first["conv1"]["images"]
    assert images.shape == (32, 28, 28, 1) and images.min() >= 0
    np.testing.assert_array_equal(images, again["conv1"]["images"])
    norms = np.linalg.norm(images.reshape(32, -1), axis=1)
    np.testing.assert_allclose(norms, keras_views.INPUT_RMS * 28, rtol=1e-4)
    assert first["conv1"]["activation"].mean() > start["conv1"]["activation"].mean()
    reached = kexp.feature_maps(model, images, layers=["conv1"])["conv1"].mean(axis=(1, 2))
    np.testing.assert_allclose(np.diag(reached), first["conv1"]["activation"], rtol=1e-4)


def test_the_run_records_optimal_inputs_and_explain_recomputes_them(trained_run, tmp_path):
    import shutil

    recorded = filter_views.read_optimal_inputs(trained_run)
    assert recorded["after"]["conv2"]["images"].shape[0] == 64
    assert recorded["before"]["conv1"]["images"].shape == (32, 28, 28, 1)
    copy = shutil.copytree(trained_run, tmp_path / trained_run.name)
    shutil.rmtree(copy / runs.VIEWS_DIR)
    shutil.rmtree(copy / runs.FIGURES_DIR)
    written = [path.name for path in explain.explain_run(copy)]
    assert runs.OPTIMAL_INPUTS_FIGURE in written and runs.FEATURE_MAPS_FIGURE in written
    again = filter_views.read_optimal_inputs(copy)
    np.testing.assert_allclose(again["after"]["conv2"]["images"],
                               recorded["after"]["conv2"]["images"], atol=1e-5)


def test_computing_optimal_inputs_gives_the_model_its_own_weights_back(trained_run, tmp_path):
    import shutil

    copy = shutil.copytree(trained_run, tmp_path / trained_run.name)
    model = keras.saving.load_model(copy / runs.MODEL_FILE)
    conv1 = model.get_layer("conv1")
    conv1.kernel.assign(conv1.kernel + 1.0)  # neither the start's weights nor the end's
    weights = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
    keras_views.write_optimal_inputs(copy, model)
    for kept, now in zip(weights, model.weights):
        np.testing.assert_array_equal(kept, keras.ops.convert_to_numpy(now))


def test_a_users_nested_model_gets_every_view():
    block = keras.Sequential([keras.layers.Conv2D(6, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2)], name="block")
    images_in = keras.Input((28, 28, 1))
    features = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="head")(
        block(keras.layers.Conv2D(5, 3, activation="relu", name="stem")(images_in)))
    model = keras.Model(images_in, keras.layers.GlobalAveragePooling2D()(features))
    images = digits(6)
    maps = kexp.feature_maps(model, images)
    inner = f"block/{block.layers[0].name}"
    assert {key: value.shape[1:] for key, value in maps.items()} == {
        "stem": (26, 26, 5), inner: (24, 24, 6), "head": (6, 6, 4)}
    fields = filter_views.receptive_fields(keras_views.keras_stages(model), 28)
    assert fields["head"] == filter_views.Field(3 + 1 + 1 * 2 + 2 * 2, 4, 0)
    patches = kexp.top_patches(model, images, k=3)
    assert patches["head"].patches.shape == (4, 3, 10, 10, 1)
    found = kexp.optimal_inputs(model, steps=3)
    assert {key: value["images"].shape[0] for key, value in found.items()} == {
        "stem": 5, inner: 6, "head": 4}


@pytest.mark.parametrize("call, message", [
    (lambda m: kexp.feature_maps(m, np.zeros((28, 28))), "Invalid value for `images`: shape"),
    (lambda m: kexp.feature_maps(m, np.zeros((2, 28, 28)), layers=["conv9"]),
     r"Invalid value for `layers`: \['conv9'\]. Expected Conv2D layer paths of this model: "
     "conv1, conv2"),
    (lambda m: kexp.top_patches(m, np.zeros((2, 28, 28)), k=0), "Invalid value for `k`: 0"),
    (lambda m: kexp.optimal_inputs(m, steps=0), "Invalid value for `steps`: 0"),
    (lambda m: kexp.feature_maps(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                                 np.zeros((1, 4, 4))), "has no Conv2D layer"),
])
def test_bad_arguments_name_the_value_and_what_is_valid(call, message):
    with pytest.raises(keras_views.ViewError, match=message):
        call(build_model("convnet", seed=0, compile=False))


def test_a_missing_snapshot_is_named_with_the_ones_there(trained_run):
    with pytest.raises(keras_views.ViewError, match="Expected one of the snapshots of .*initial"):
        kexp.feature_maps(trained_run, np.zeros((1, 28, 28)), snapshot="epoch_099")
