"""Every numbered claim of issue 3 (the seed documents) as a test that fails if the claim, or the
code that shows it, is wrong. Tiny data, one epoch, tiny models: the whole file runs in about a
minute on 2 CPU cores.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from kexp import analysis, convolution, initializers
from kexp.experiments.demos import (common, cross_correlation, filter_complexity,
                                    flip_invariance, gaussian_blur, initialization,
                                    learned_filters, peak_filter)

keras = pytest.importorskip("keras")

from kexp import keras_initializers, runs  # noqa: E402  (imports Keras)
from kexp.config import TrainConfig  # noqa: E402
from kexp.layers import TrueConv2D  # noqa: E402

# The demos' recipe (no augmentation, constant learning rate, every digit trains), on less data.
TINY = dict(model="convnet", epochs=1, batch_size=64, data="mnist-5k", train_samples=256,
            test_samples=128, seed=0, learning_rate=common.LEARNING_RATE, **common.RECIPE)


def _train(tmp_path, **overrides):
    """One tiny run through kexp.training.train; returns (kernels before, kernels after, status)."""
    from kexp import training

    run_dir = training.train(TrainConfig(**{**TINY, "runs_dir": str(tmp_path), **overrides}),
                          verbose=0)
    kernels = run_dir / runs.KERNELS_DIR
    return (runs.load_kernels(kernels / "initial.npz"), runs.load_kernels(kernels / "final.npz"),
            runs.read_status(run_dir))


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """The same tiny run with learning rate 1e-3 and with 0 (the control)."""
    root = tmp_path_factory.mktemp("runs")
    return {rate: _train(root, learning_rate=rate) for rate in (1e-3, 0.0)}


# --- 1. random start, centred at 0, from the stated distribution ------------------------------

@pytest.mark.parametrize("spec", initialization.RANDOM_INITIALIZERS)
def test_1_initial_kernels_fit_the_exact_distribution_and_reject_a_wrong_one(spec):
    fit = initialization.initializer_fit(spec, draws=32)
    assert fit["fits"], fit["ks"]
    assert fit["wrong_rejected"], fit["ks_wrong"]
    assert abs(fit["mean"]) < 5 * fit["theory_std"] / math.sqrt(fit["weights"])
    assert fit["std"] == pytest.approx(fit["theory_std"], rel=0.05)
    assert fit["theory_low"] <= fit["min"] and fit["max"] <= fit["theory_high"]


def test_1_ks_rejects_the_seed_formula_and_a_uniform_labelled_normal():
    values = initialization.draw_conv1_kernels("glorot_uniform", 32).ravel()
    high, low = initializers.seed_formula_bounds(common.CONV1_SHAPE)
    seed_theory = initializers.Theory("uniform", low=low, high=high)
    critical = initialization.ks_critical_value(values.size)
    assert initialization.ks_statistic(values, seed_theory.cdf) > 10 * critical
    normal_values = initialization.draw_conv1_kernels("glorot_normal", 32).ravel()
    uniform = initializers.theory("glorot_uniform", common.CONV1_SHAPE)
    assert initialization.ks_statistic(normal_values, uniform.cdf) > critical


def test_1_ks_statistic_and_critical_value_match_hand_computed_values():
    uniform01 = initializers.Theory("uniform", low=0.0, high=1.0)
    assert initialization.ks_statistic(np.array([0.5]), uniform01.cdf) == pytest.approx(0.5)
    assert initialization.ks_statistic(np.array([0.25, 0.75]),
                                       uniform01.cdf) == pytest.approx(0.25)
    assert initialization.ks_critical_value(100, 0.05) == pytest.approx(0.1358, abs=1e-4)


def test_1_orthogonal_kernel_has_orthonormal_rows():
    assert initialization.orthogonality_error() < 1e-5


# --- 2. backpropagation changes the filters; learning rate 0 changes nothing ------------------

def test_2_training_moves_every_filter_and_learning_rate_zero_moves_none(trained_pair):
    before, after, _ = trained_pair[1e-3]
    assert np.all(analysis.relative_change(before["conv1"], after["conv1"]) > 0)
    assert np.all(analysis.relative_change(before["conv2"], after["conv2"]) > 0)
    before0, after0, status = trained_pair[0.0]
    for layer in ("conv1", "conv2"):
        assert np.array_equal(before0[layer], after0[layer])
        assert np.all(analysis.relative_change(before0[layer], after0[layer]) == 0)
    assert np.array_equal(before0["conv1"], before["conv1"])  # same seed, same start
    assert status["status"] == "finished"


# --- 3. the [-1 1 -1] peak filter -------------------------------------------------------------

def test_3_peak_filter_response_to_4_decimals_and_the_peaks():
    u = convolution.SEED_PEAK_SEQUENCE
    response = convolution.peak_filter_response()
    by_hand = np.array([-u[k] + u[k + 1] - u[k + 2] for k in range(len(u) - 2)])
    np.testing.assert_array_equal(np.round(response, 4), np.round(by_hand, 4))
    assert round(response[0], 4) == round(-0.8416 + 0.7342 - 0.5710, 4)  # = -0.6784
    assert convolution.local_peaks(u) == list(convolution.SEED_PEAK_POSITIONS)
    assert convolution.positive_response_positions(response) == [5, 7, 9]
    assert peak_filter.peak_filter_numbers()["max_pool_point"] == 5


def test_3_the_answers_printed_numbers_do_not_follow_from_its_u():
    numbers = peak_filter.peak_filter_numbers()
    assert not np.allclose(numbers["response"], convolution.SEED_PEAK_RESPONSE, atol=5e-5)
    assert numbers["max_difference_to_printed"] > 0.1
    assert numbers["best_3tap_fit_residual"] > 0.1  # no 3-tap filter maps u to the printed y
    assert numbers["printed_max_pool_point"] != 5


# --- 4. would backprop turn 3 random numbers into [-1, 1, -1]? --------------------------------

def test_4_peak_labels_are_local_peaks():
    x, y = peak_filter.peak_sequences(5, 12, np.random.default_rng(0))
    for row, labels in zip(x[..., 0], y[..., 0]):
        assert [i + 2 for i in np.flatnonzero(labels)] == convolution.local_peaks(row)


def test_4_backprop_learns_a_peak_filter_close_to_minus1_2_minus1():
    result = peak_filter.learn_peak_filter(seeds=(0,), sequences=1024, epochs=8)
    learned = result["seeds"][0]
    assert learned["cosine_with_peak_filter"] > 0.9
    assert learned["cosine_with_second_difference"] > 0.97
    assert learned["accuracy"] > result["fixed_filter_accuracy"]


# --- 5. kernels that are patches of the image -------------------------------------------------

def test_5_image_patches_are_normalised_patches_of_real_training_digits():
    kernel = np.asarray(keras_initializers.ImagePatches(seed=3)((3, 3, 1, 32)))
    filters = kernel[:, :, 0, :].reshape(9, 32).T.astype(np.float64)
    np.testing.assert_allclose(filters.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(filters, axis=1), 1, atol=1e-5)
    from kexp import data

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


def test_5_image_patches_train_and_save_and_load(tmp_path):
    before, after, status = _train(tmp_path, init="image_patches", freeze=["conv1"])
    assert np.array_equal(before["conv1"], after["conv1"])
    assert not np.array_equal(before["conv2"], after["conv2"])
    model = keras.saving.load_model(next(tmp_path.glob("*/model.keras")))
    initializer = model.get_layer("conv1").kernel_initializer
    assert isinstance(initializer, keras_initializers.ImagePatches)
    assert 0.0 <= status["test_accuracy"] <= 1.0


@pytest.mark.parametrize("bad, message", [
    (dict(gain=-1.0), "Invalid value for `gain`: -1.0. Expected a positive number."),
    (dict(data="mnist-9k"), "Invalid value for `data`: 'mnist-9k'. Expected one of: mnist-5k"),
    (dict(seed=-2), "Invalid value for `seed`: -2."),
])
def test_5_image_patches_rejects_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keras_initializers.ImagePatches(**bad)


# --- 6. hand-designed filters, trainable or frozen --------------------------------------------

def test_6_designed_filters_are_documented_variants_of_their_base():
    kernel = np.asarray(keras_initializers.DesignedFilters("sobel_x")((3, 3, 1, 32)))[:, :, 0, :]
    unit = analysis.SOBEL_X / np.linalg.norm(analysis.SOBEL_X)
    np.testing.assert_allclose(kernel[:, :, 0], unit, atol=1e-6)
    np.testing.assert_allclose(kernel[:, :, 1], np.rot90(unit), atol=1e-6)
    np.testing.assert_allclose(kernel[:, :, 8], -unit, atol=1e-6)
    np.testing.assert_allclose(analysis.edge_likeness(kernel[:, :, None, :]), 1.0, atol=1e-5)


def test_6_designed_filters_detect_what_they_are_named_for():
    point = np.zeros((7, 7))
    point[3, 3] = 1.0
    line = np.zeros((7, 7))
    line[:, 3] = 1.0

    def response(name, image):
        base = keras_initializers.DesignedFilters(name).base()
        return convolution.correlate2d_valid(image, base)

    assert np.unravel_index(np.argmax(response("laplacian", point)), (5, 5)) == (2, 2)
    assert np.argmax(response("peak", line).sum(axis=0)) == 2  # the line's column
    step = np.zeros((5, 5))
    step[:, 3:] = 1.0
    assert response("sobel_x", step).min() >= 0 and response("sobel_x", step).max() > 0
    np.testing.assert_allclose(keras_initializers.DesignedFilters("gaussian").base().sum(), 1)


def test_6_frozen_designed_filters_stay_and_the_rest_learns(tmp_path):
    before, after, status = _train(tmp_path, init="sobel_x", freeze=["conv1"])
    expected = np.asarray(keras_initializers.DesignedFilters("sobel_x")((3, 3, 1, 32)))
    np.testing.assert_allclose(before["conv1"], expected, atol=1e-7)
    assert np.array_equal(before["conv1"], after["conv1"])
    assert not np.array_equal(before["conv2"], after["conv2"])
    model = keras.saving.load_model(next(tmp_path.glob("*/model.keras")))
    config = model.get_layer("conv1").kernel_initializer.get_config()
    assert config == {"name": "sobel_x", "gain": 1.0, "sigma": 1.0}


def test_6_designed_filters_config_round_trip_and_bad_arguments():
    initializer = keras_initializers.DesignedFilters("gaussian", gain=2.0, sigma=0.5)
    clone = keras_initializers.DesignedFilters.from_config(initializer.get_config())
    assert clone.get_config() == initializer.get_config()
    assert np.array_equal(np.asarray(clone((3, 3, 1, 4))), np.asarray(initializer((3, 3, 1, 4))))
    with pytest.raises(ValueError, match="Invalid value for `name`: 'sobel_z'. Expected one of"):
        keras_initializers.DesignedFilters("sobel_z")
    with pytest.raises(ValueError, match="Invalid value for `gain`: 0"):
        keras_initializers.DesignedFilters("peak", gain=0)
    with pytest.raises(ValueError, match=r"Expected a Conv2D kernel \(3, 3, C_in, C_out\)"):
        keras_initializers.DesignedFilters("peak")((5, 5, 1, 8))
    with pytest.raises(initializers.InitializerError, match="Invalid value for `gaussian:sigma`"):
        initializers.parse_spec("gaussian:sigma=-1")


# --- 7. glorot_uniform's real bounds vs the seed's formula ------------------------------------

def test_7_measured_kernel_respects_sqrt_bound_and_violates_the_seeds(trained_pair):
    kernel = trained_pair[1e-3][0]["conv1"]
    numbers = initialization.glorot_bounds_numbers(kernel)
    assert (numbers["fan_in"], numbers["fan_out"]) == (9, 288)
    assert numbers["limit"] == pytest.approx(math.sqrt(6 / 297))
    assert round(numbers["limit"], 4) == 0.1421
    assert numbers["seed_formula_bound"] == pytest.approx(6 / 297)
    assert numbers["fraction_outside_limit"] == 0
    assert numbers["max_abs_weight"] > 0.9 * numbers["limit"]
    assert numbers["fraction_outside_seed_bounds"] > 0.5


# --- 8. the filters are the weights -----------------------------------------------------------

def test_8_conv1_trainable_weights_are_exactly_kernel_and_bias():
    from kexp.models import build_model

    model = build_model("convnet", seed=0)
    report = learned_filters.conv1_weights_report(model)
    assert [shape for _, shape in report["conv1_weights"]] == [(3, 3, 1, 32), (32,)]
    assert report["conv1_parameters"] == report["conv1_count_params"] == 320
    assert report["kernel_is_first"] and report["bias_is_second"]
    assert report["conv1_non_trainable"] == 0
    assert report["model_trainable_parameters"] == report["model_count_params"]
    conv1 = model.get_layer("conv1")
    kernel = np.random.default_rng(0).normal(size=(3, 3, 1, 32)).astype(np.float32)
    conv1.kernel.assign(kernel)
    images = np.random.default_rng(1).random((1, 28, 28, 1)).astype(np.float32)
    expected = np.maximum(convolution.conv2d_layer_reference(images, kernel,
                                                             conv1.bias.numpy()), 0)
    np.testing.assert_allclose(np.asarray(conv1(images)), expected, atol=1e-4)


# --- 9. 5x5 image, 32 3x3 kernels, 'valid' -> 32 maps of 3x3 ----------------------------------

def test_9_shapes_and_keras_is_cross_correlation_not_the_seed_formula():
    rng = np.random.default_rng(0)
    image = rng.random((5, 5))
    kernel = rng.normal(size=(3, 3, 1, 32))
    output = cross_correlation.keras_conv2d(image[None, :, :, None], kernel)
    assert output.shape == (1, 3, 3, 32)
    np.testing.assert_allclose(output, convolution.conv2d_layer_reference(
        image[None, :, :, None], kernel), atol=1e-5)
    seed_formula = convolution.convolve2d_layer_reference(image[None, :, :, None], kernel)[0]
    assert np.abs(output[0] - seed_formula).max() > 0.1
    flipped = convolution.convolve2d_layer_reference(
        image[None, :, :, None], convolution.flip_kernel(kernel))[0]
    np.testing.assert_allclose(output[0], flipped, atol=1e-5)


def test_9_references_on_a_single_bright_pixel():
    """A delta image reproduces the kernel under convolution and the flipped kernel under
    cross-correlation: the definitions, independent of any library."""
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    kernel = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(convolution.convolve2d_valid(delta, kernel), kernel)
    np.testing.assert_array_equal(convolution.correlate2d_valid(delta, kernel), kernel[::-1, ::-1])


# --- 10. first-layer filters and edge detectors -----------------------------------------------

def test_10_edge_likeness_separates_edge_detectors_from_other_filters():
    edges = analysis.oriented_edge_filters()
    assert np.allclose(analysis.edge_likeness(np.transpose(edges, (1, 2, 0))[:, :, None, :]), 1)
    bases = np.stack([keras_initializers.DesignedFilters(name).base()
                      for name in ("laplacian", "peak")], axis=-1)[:, :, None, :]
    assert np.all(analysis.edge_likeness(bases) < 0.3)


def test_10_edge_likeness_rises_when_a_first_layer_trains(tmp_path):
    before, after, _ = _train(tmp_path, train_samples=1000, learning_rate=0.01)
    start = analysis.edge_likeness(before["conv1"])
    end = analysis.edge_likeness(after["conv1"])
    assert start.shape == end.shape == (32,)
    assert end.mean() > start.mean()


# --- 11. the 1-D worked example ---------------------------------------------------------------

def test_11_worked_example_and_the_shifting_picture():
    a, b = convolution.SEED_EXAMPLE_A, convolution.SEED_EXAMPLE_B
    c = convolution.convolve_1d(a, b)
    np.testing.assert_allclose(c, convolution.SEED_EXAMPLE_C)
    for n, expected in enumerate(convolution.SEED_EXAMPLE_C):
        _, (signal, shifted) = convolution.shifted_kernel_terms(a, b, n)
        assert float(signal @ shifted) == pytest.approx(expected)


def test_11_hand_written_1d_references_match_numpy_on_random_data():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=11), rng.normal(size=4)
    np.testing.assert_allclose(convolution.convolve_1d(a, b), np.convolve(a, b, "full"))
    np.testing.assert_allclose(convolution.convolve_1d(a, b, "valid"), np.convolve(a, b, "valid"))
    np.testing.assert_allclose(convolution.correlate_1d(a, b), np.correlate(a, b, "valid"))
    np.testing.assert_allclose(convolution.correlate_1d(a, b, "full"), np.correlate(a, b, "full"))
    assert not np.allclose(convolution.convolve_1d(a, b, "valid"), convolution.correlate_1d(a, b))
    with pytest.raises(convolution.ConvolutionError, match="Invalid value for `mode`: 'same'"):
        convolution.convolve_1d(a, b, "same")


# --- 12. Keras Conv2D = cross-correlation = convolution with the flipped kernel ---------------

def test_12_keras_conv2d_against_independent_references():
    result = cross_correlation.cross_correlation_check()
    assert result["vs_cross_correlation"] < 1e-4
    assert result["vs_convolution_flipped_kernel"] < 1e-4
    assert result["vs_convolution_same_kernel"] > 0.1


def test_12_fast_batch_correlation_matches_the_loops():
    rng = np.random.default_rng(0)
    images, kernel = rng.random((3, 8, 9)), rng.normal(size=(5, 5))
    expected = np.stack([convolution.correlate2d_valid(image, kernel) for image in images])
    np.testing.assert_allclose(convolution.correlate2d_valid_batch(images, kernel), expected)


# --- 13. the flip does not matter for learning ------------------------------------------------

def test_13_true_convolution_layer_learns_the_flipped_kernels():
    result = flip_invariance.flip_training_pair(steps=6, batch_size=16, filters=2)
    assert result["kernel_movement"] > 1e-3  # it did learn something
    assert result["max_kernel_gap"] < 1e-6
    assert result["max_loss_gap"] < 1e-6
    assert result["max_output_gap"] < 1e-6


def test_13_true_conv_layer_is_a_convolution_and_differs_without_the_flip():
    rng = np.random.default_rng(0)
    images, kernel = rng.random((1, 6, 6, 1)), rng.normal(size=(3, 3, 1, 2))
    keras_conv2d = cross_correlation.keras_conv2d
    plain = keras_conv2d(images, kernel)
    np.testing.assert_allclose(keras_conv2d(images, convolution.flip_kernel(kernel),
                                            layer_class=TrueConv2D), plain, atol=1e-5)
    assert np.abs(keras_conv2d(images, kernel, layer_class=TrueConv2D) - plain).max() > 0.1
    expected = convolution.convolve2d_valid(images[0, :, :, 0], kernel[:, :, 0, 0])
    convolved = keras_conv2d(images, kernel, layer_class=TrueConv2D)
    np.testing.assert_allclose(convolved[0, :, :, 0], expected, atol=1e-5)


# --- 14. a CNN can learn Gaussian smoothing ---------------------------------------------------

def test_14_gaussian_kernel_properties():
    kernel = convolution.gaussian_kernel(5, 1.0)
    assert kernel.sum() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (2, 2)
    np.testing.assert_allclose(kernel, kernel.T)
    assert kernel[2, 3] / kernel[2, 2] == pytest.approx(math.exp(-0.5))
    with pytest.raises(convolution.ConvolutionError, match="Invalid value for `size`: 4"):
        convolution.gaussian_kernel(4)


def test_14_a_conv_layer_learns_the_gaussian_blur():
    result = gaussian_blur.learn_gaussian_blur(count=1000, epochs=6)
    assert result["initial_relative_error"] > 0.5
    assert result["relative_error"] < 0.01
    box = np.full((5, 5), 1 / 25)
    assert np.linalg.norm(result["learned"] - box) > 0.1


# --- the command ------------------------------------------------------------------------------

def test_demo_command_lists_runs_and_rejects(tmp_path, capsys):
    from kexp import cli

    assert cli.main(["demo", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 15 and listed[2].split()[1] == "peak_filter"
    assert cli.main(["demo", "bogus"]) == 2
    assert "Invalid value for `name`: 'bogus'. Expected one of: all" in capsys.readouterr().err
    assert cli.main(["demo", "11", "--runs-dir", str(tmp_path),
                     "--figures-dir", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "demos" / "11_worked_example.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "11_worked_example.png").exists()
    summary = runs.read_json(tmp_path / "demos" / "summary.json")
    assert summary["11_worked_example"]["matches_seed"] is True
    assert "11_worked_example" in (tmp_path / "demos" / "summary.txt").read_text()


def test_importing_the_demo_command_does_not_import_tensorflow():
    code = ("import sys, kexp.experiments.demos.command, kexp.convolution; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert output == "False"


# --- 15. are second-layer filters more complex than first-layer edge detectors? ------------

def test_15_single_orientation_fraction_tells_simple_from_complex_patterns():
    score = {name: analysis.single_orientation_fraction(pattern[None])[0]
             for name, pattern in filter_complexity.reference_patterns().items()}
    assert score["grating"] > 0.85 and score["stroke"] > 0.7  # one orientation
    assert 0.25 < score["cross"] < 0.55  # two
    assert score["ring"] < 0.3 and score["noise"] < 0.35  # every orientation
    rotated = analysis.single_orientation_fraction(
        np.rot90(filter_complexity.reference_patterns()["stroke"])[None])[0]
    assert rotated == pytest.approx(score["stroke"], abs=0.02)
    stripes = np.tile([1.0, 0.0], (28, 14))
    assert analysis.pattern_fraction(np.full((1, 28, 28), 0.3))[0] < 1e-9
    assert analysis.pattern_fraction(stripes[None])[0] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def complexity_numbers(tmp_path_factory):
    """A short real run (convnet, 2 epochs on 1,000 digits) and its filters' numbers."""
    from kexp import filter_views, training

    config = TrainConfig(**{**TINY, "train_samples": 1000, "epochs": 2, "learning_rate": 3e-3,
                            "runs_dir": str(tmp_path_factory.mktemp("runs"))})
    run_dir = training.train(config, verbose=0)
    return filter_complexity.complexity_numbers(filter_views.read_optimal_inputs(run_dir))


def test_15_training_makes_conv2_oriented_not_more_complex_than_conv1(complexity_numbers):
    mean = {key: entry["single_orientation_mean"] for key, entry in complexity_numbers.items()}
    assert mean["conv2_before"] < mean["conv1_before"] - 0.1  # random conv2 mixes orientations
    assert mean["conv2_after"] > mean["conv2_before"] + 0.08  # training makes oriented strokes
    assert mean["conv2_after"] > mean["conv1_after"] - 0.12  # about as simple as conv1's
    bright = {key: entry["brightness_detectors"] for key, entry in complexity_numbers.items()}
    # conv1 is not "all edge detectors": early in training many of its filters count ink (the
    # 60-epoch default run keeps 2 of 32, README)
    assert bright["conv1_after"] > bright["conv1_before"] + 4
    assert bright["conv2_before"] == bright["conv2_after"] == 0
