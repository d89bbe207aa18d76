"""Model shapes, layer names, the 320 parameters of conv1, and reproducible initial weights."""

import numpy as np
import pytest

from kexp.config import ConfigError

from helpers import run_python


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


@pytest.mark.parametrize("name, conv2_shape, layer_names", [
    ("mnist_cnn", (3, 3, 32, 32),
     ["conv1", "conv2", "pool", "dropout1", "flatten", "dense1", "dropout2", "predictions"]),
    ("convnet", (3, 3, 32, 64),
     ["conv1", "pool1", "conv2", "pool2", "flatten", "dropout", "predictions"]),
])
def test_architectures(keras, name, conv2_shape, layer_names):
    from kexp.network.models import build_model

    model = build_model(name, seed=0)
    assert [layer.name for layer in model.layers] == layer_names
    conv1 = model.get_layer("conv1")
    assert tuple(conv1.kernel.shape) == (3, 3, 1, 32)
    assert conv1.count_params() == 3 * 3 * 1 * 32 + 32 == 320
    assert tuple(model.get_layer("conv2").kernel.shape) == conv2_shape
    assert model.output_shape == (None, 10)


def test_build_model_compiles_adam_at_the_learning_rate_and_one_step_moves_conv1(keras):
    """Compiled as promised, ready for plain model.fit: Adam at `learning_rate`, sparse
    categorical cross-entropy, accuracy. Adam's first step moves every weight whose gradient is
    not ~0 by the learning rate (m/sqrt(v) = sign of the gradient), so conv1's largest move is
    it."""
    from kexp.network.models import build_model

    model = build_model(seed=0, learning_rate=2e-3)
    assert type(model.optimizer) is keras.optimizers.Adam
    assert float(model.optimizer.learning_rate) == pytest.approx(2e-3)
    assert model.loss == "sparse_categorical_crossentropy"
    rng = np.random.default_rng(0)
    images = rng.random((16, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 16)
    before = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    moved = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel) - before
    assert np.abs(moved).max() == pytest.approx(2e-3, rel=1e-3)


def test_filters_are_the_weights(keras):
    from kexp.network.models import build_model

    conv1 = build_model("convnet", seed=0).get_layer("conv1")
    assert [tuple(w.shape) for w in conv1.trainable_weights] == [(3, 3, 1, 32), (32,)]
    assert np.all(keras.ops.convert_to_numpy(conv1.bias) == 0)


def test_initializer_choice_reaches_each_conv_layer(keras):
    from kexp.network.models import build_model

    model = build_model("mnist_cnn", init="zeros", init_conv2="ones", conv2_filters=16, seed=0)
    assert np.all(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel) == 0)
    conv2 = keras.ops.convert_to_numpy(model.get_layer("conv2").kernel)
    assert conv2.shape == (3, 3, 32, 16) and np.all(conv2 == 1)


def test_same_seed_same_kernels_other_seed_other_kernels(keras):
    from kexp.network.models import build_model

    def conv1(seed):
        model = build_model("convnet", seed=seed)
        return keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)

    assert np.array_equal(conv1(5), conv1(5))
    assert not np.array_equal(conv1(5), conv1(6))


def test_freeze_keeps_conv1_untrainable(keras):
    from kexp.network.models import build_model

    model = build_model("convnet", freeze=["conv1"], seed=0)
    assert not model.get_layer("conv1").trainable and model.get_layer("conv2").trainable


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "resnet"},
     r"Invalid value for `model`: 'resnet'\. Expected one of: mnist_cnn, convnet"),
    ({"freeze": ["dense1"]}, r"Invalid value for `freeze`: 'dense1'\. Expected layer names"),
])
def test_bad_model_arguments(keras, kwargs, message):
    from kexp.network.models import build_model

    with pytest.raises(ConfigError, match=message):
        build_model(**kwargs)


def test_a_user_script_can_fit_and_snapshot_with_plain_keras(keras, tmp_path):
    import kexp

    model = kexp.build_model("convnet", init="he_normal", seed=1)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    snapshots = kexp.KernelSnapshots(tmp_path / "kernels")
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[snapshots])
    names = sorted(path.name for path in (tmp_path / "kernels").iterdir())
    assert names == ["epoch_001.npz", "final.npz", "initial.npz"]


@pytest.mark.slow
def test_snapshots_find_conv_layers_nested_in_a_users_model(keras, tmp_path):
    """A user's functional model: a stem Conv2D, a Sequential block used as a layer, and a
    functional sub-model. Every Conv2D is found, keyed by its layer path."""
    from kexp.network.conv_layers import conv_kernels
    from kexp.storage import runs
    from kexp.training.callbacks import KernelSnapshots

    block = keras.Sequential([keras.layers.Conv2D(16, 3)], name="block")
    head_input = keras.Input((24, 24, 16))
    head = keras.Model(head_input, keras.layers.Conv2D(4, 3, name="conv")(head_input),
                       name="head")
    images = keras.Input((28, 28, 1))
    features = head(block(keras.layers.Conv2D(8, 3, name="stem")(images)))
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(images, outputs)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))

    shapes = {"stem": (3, 3, 1, 8), f"block/{block.layers[0].name}": (3, 3, 8, 16),
              "head/conv": (3, 3, 16, 4)}
    assert {key: kernel.shape for key, kernel in conv_kernels(model).items()} == shapes
    rng = np.random.default_rng(0)
    model.fit(rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 32), epochs=1,
              verbose=0, callbacks=[KernelSnapshots(tmp_path)])
    for label in (runs.INITIAL, runs.epoch_label(1), runs.FINAL):
        kernels = runs.load_kernels(tmp_path / runs.snapshot_name(label))
        assert {key: kernel.shape for key, kernel in kernels.items()} == shapes, label
    final = runs.load_kernels(tmp_path / runs.snapshot_name(runs.FINAL))
    assert all(np.array_equal(final[key], kernel) for key, kernel in conv_kernels(model).items())


def test_kexp_models_keep_their_plain_layer_names(keras):
    from kexp.network.conv_layers import conv_kernels
    from kexp.network.models import build_model

    assert list(conv_kernels(build_model("convnet", seed=0))) == ["conv1", "conv2"]


def test_save_model_atomic_fsyncs_before_the_rename(keras, tmp_path, file_events):
    from kexp.network.models import build_model
    from kexp.network.saving import load_model, save_model_atomic

    model = build_model("convnet", seed=0, compile=False)
    path = save_model_atomic(model, tmp_path / "model.keras")
    assert file_events == ["fsync", "replace"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    assert load_model(path).get_layer("conv1").kernel.shape == (3, 3, 1, 32)


@pytest.mark.slow
def test_kexp_load_model_reads_custom_initializers_in_a_fresh_process(keras, tmp_path):
    """A resumed run loads its checkpoint through kexp's loader, in a new process that has not
    imported kexp.network.keras_initializers: the loader must register kexp's classes itself."""
    from kexp.network.models import build_model

    path = tmp_path / "peak.keras"
    build_model("convnet", init="peak", seed=0).save(path)
    code = ("from kexp.network.saving import load_model\n"
            f"model = load_model({str(path)!r})\nprint(model.get_layer('conv1').kernel.shape)")
    result = run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(3, 3, 1, 32)" in result.stdout
