"""docs/claims.md's claim 5: kernels that are patches of the image, against random filters at
the page's accuracies (the demos' 3-epoch runs: conftest's `demo`, shared with the other claims'
files)."""

from __future__ import annotations

import numpy as np
import pytest

from claim_checks import FROZEN, TRAINED, saved_model
from kexp.network import keras_initializers


# --- 5. kernels that are patches of the image -------------------------------------------------

def test_5_image_patches_are_normalised_patches_of_real_training_digits():
    kernel = np.asarray(keras_initializers.ImagePatches(seed=3)((3, 3, 1, 32)))
    filters = kernel[:, :, 0, :].reshape(9, 32).T.astype(np.float64)
    np.testing.assert_allclose(filters.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(filters, axis=1), 1, atol=1e-5)
    from kexp.digits import data

    images = data.load("mnist-5k").x_train.astype(np.float64) / 255.0
    windows = np.lib.stride_tricks.sliding_window_view(images, (3, 3), axis=(1, 2)).reshape(-1, 9)
    windows = windows[windows.std(axis=1) >= keras_initializers.PATCH_MIN_STD]
    centred = windows - windows.mean(axis=1, keepdims=True)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    for candidate in filters[:3]:
        assert np.abs(unit - candidate).max(axis=1).min() < 1e-5
    again = np.asarray(keras_initializers.ImagePatches(seed=3)((3, 3, 1, 32)))
    other = np.asarray(keras_initializers.ImagePatches(seed=4)((3, 3, 1, 32)))
    assert np.array_equal(kernel, again) and not np.allclose(kernel, other)


@pytest.mark.slow
def test_5_image_patches_beat_random_filters_at_the_readmes_accuracies(demo):
    frozen = demo.run("image_patches", FROZEN)
    assert np.array_equal(frozen["before"]["conv1"], frozen["after"]["conv1"])
    assert not np.array_equal(frozen["before"]["conv2"], frozen["after"]["conv2"])
    initializer = saved_model(frozen).get_layer("conv1").kernel_initializer
    assert isinstance(initializer, keras_initializers.ImagePatches)
    accuracy = {(init, freeze): demo.run(init, freeze)["test_accuracy"]
                for init in ("image_patches", "glorot_uniform") for freeze in ((), FROZEN)}
    readme = {("image_patches", ()): 0.952, ("image_patches", FROZEN): 0.949,
              ("glorot_uniform", ()): 0.929, ("glorot_uniform", FROZEN): 0.902}
    for setup, expected in readme.items():
        assert accuracy[setup] == pytest.approx(expected, abs=TRAINED), setup
    for freeze in ((), FROZEN):
        assert accuracy["image_patches", freeze] > accuracy["glorot_uniform", freeze]
    # The caveat: the patches start with norm 1, the random filters at about 0.23.
    norms = [np.linalg.norm(demo.run(init)["before"]["conv1"].reshape(9, 32), axis=0)
             for init in ("image_patches", "glorot_uniform")]
    np.testing.assert_allclose(norms[0], 1.0, atol=1e-5)
    assert round(norms[1].mean(), 2) == 0.23


@pytest.mark.parametrize("bad, message", [
    (dict(gain=-1.0), "Invalid value for `gain`: -1.0. Expected a positive number."),
    (dict(data="mnist-9k"), "Invalid value for `data`: 'mnist-9k'. Expected one of: mnist-5k"),
    (dict(seed=-2), "Invalid value for `seed`: -2."),
])
def test_5_image_patches_rejects_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keras_initializers.ImagePatches(**bad)
