"""Every numbered claim of docs/claims.md as a test of the same statement, at that page's
settings: the trainings are the demos' own (`DemoContext.run`: convnet, 3 epochs on the 4,000
bundled digits, seed 0), shared between the tests that read them, and the hand-written trainings
run with the demos' defaults; claims 2, 10 and 15 are judged at convergence on the default
recipe's run (`DemoContext.converged`), which is conftest's `default_run`, trained once per
suite. Numbers that come out of training are checked to about 0.01 (float rounding differs
between CPUs), the others to the digits the page prints; where a test allows more, the page says
so. About 1.5 minutes on 2 CPU cores, plus the default run's 2-6.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from kexp.config import TrainConfig
from kexp.filters import analysis, convolution
from kexp.network import initializers
from kexp.probes import filter_views
from kexp.experiments.demos import (common, cross_correlation, filter_complexity,
                                    flip_invariance, gaussian_blur, initialization,
                                    learned_filters, peak_filter)

keras = pytest.importorskip("keras")

from kexp.network import keras_initializers  # noqa: E402  (imports Keras)
from kexp.network.layers import TrueConv2D  # noqa: E402
from kexp.storage import runs

# Differences between two trainings of these settings on different CPUs stay within this.
TRAINED = 0.01
FROZEN = ("conv1",)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demos' context: `demo.run(init, freeze, learning_rate)` trains once at docs/claims.md's
    settings (common.MODEL, EPOCHS, TRAIN_SAMPLES, ...) and every later call reuses the run."""
    return common.DemoContext(tmp_path_factory.mktemp("demos"))


@pytest.fixture(scope="module")
def converged(demo, default_run):
    """The demos' context with conftest's default run as the finished run that demos 2, 10 and
    15 judge (so the suite trains the 60-epoch run once); its 3-epoch runs are `demo`'s."""
    return common.DemoContext(demo.out_dir, converged_dir=default_run, runs=demo.runs)


def _saved_model(run: dict):
    return keras.saving.load_model(os.path.join(run["run_dir"], runs.MODEL_FILE))


# --- 1. random start, centred at 0, from the stated distribution ------------------------------

@pytest.mark.parametrize("spec", initialization.RANDOM_INITIALIZERS)
def test_1_initial_kernels_fit_the_exact_distribution_and_reject_a_wrong_one(spec):
    fit = initialization.initializer_fit(spec)  # docs/claims.md's 32 kernels, 9,216 weights
    assert fit["weights"] == 9216
    assert round(fit["ks_critical"], 4) == 0.0203
    assert fit["fits"] and round(fit["ks"], 4) <= 0.0095, fit["ks"]
    assert fit["wrong_rejected"] and 0.043 <= round(fit["ks_wrong"], 3) <= 0.064, fit["ks_wrong"]
    assert abs(fit["mean"]) <= 0.004
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

def _change(run: dict, layer: str) -> np.ndarray:
    return analysis.relative_change(run["before"][layer], run["after"][layer])


def test_2_training_moves_every_filter_and_learning_rate_zero_moves_none(converged):
    trained = converged.converged()
    conv1, conv2 = _change(trained, "conv1"), _change(trained, "conv2")
    # docs/claims.md: at convergence every conv1 filter moved by 24-673% of its starting norm (mean
    # 143%), conv2 184%; the largest within 3 points, as docs/claims.md says.
    assert conv1.min() == pytest.approx(0.24, abs=TRAINED)
    assert conv1.max() == pytest.approx(6.73, abs=3 * TRAINED)
    assert conv1.mean() == pytest.approx(1.43, abs=TRAINED)
    assert conv2.mean() == pytest.approx(1.84, abs=TRAINED)
    assert trained["test_accuracy"] == pytest.approx(0.987, abs=TRAINED)
    control = converged.converged(learning_rate=0.0)
    for layer in ("conv1", "conv2"):
        assert np.array_equal(control["before"][layer], control["after"][layer])
        assert np.all(_change(control, layer) == 0)
    assert np.array_equal(control["before"]["conv1"], trained["before"]["conv1"])  # same start


def test_2_after_3_epochs_the_filters_had_moved_less(converged):
    early = converged.run("glorot_uniform")
    conv1, conv2 = _change(early, "conv1"), _change(early, "conv2")
    # docs/claims.md: after the demos' 3 epochs conv1 35-214% (mean 66%), conv2 63%.
    assert conv1.min() == pytest.approx(0.35, abs=TRAINED)
    assert conv1.max() == pytest.approx(2.14, abs=3 * TRAINED)
    assert conv1.mean() == pytest.approx(0.66, abs=TRAINED)
    assert conv2.mean() == pytest.approx(0.63, abs=TRAINED)
    assert conv1.mean() < _change(converged.converged(), "conv1").mean()


def test_2_the_demos_refuse_a_run_that_is_not_the_default_recipe(demo, tmp_path):
    other = demo.run("glorot_uniform")["run_dir"]  # convnet, 3 epochs
    with pytest.raises(runs.RunError, match=r"Invalid value for `converged_run`: '.*' has "
                       r"model='convnet'\. Expected a finished run of the default recipe "
                       r"\(model='convnet_dense'\)"):
        common.DemoContext(tmp_path, converged_dir=other)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(runs.RunError, match=r"Invalid value for `converged_run`: '.*a-file' is "
                       r"not a run folder \(.*\)\. Expected a finished run of the default"):
        common.DemoContext(tmp_path, converged_dir=a_file)


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
    # The largest magnitudes are the negative responses at the troughs (points 4, 6 and 8).
    troughs = [point for point in range(2, len(u)) if u[point - 1] < min(u[point - 2], u[point])]
    largest = sorted(np.argsort(-np.abs(response))[:3] + 2)
    assert troughs == largest == [4, 6, 8] and np.all(response[np.array(largest) - 2] < 0)


def test_3_the_answers_printed_numbers_do_not_follow_from_its_u():
    numbers = peak_filter.peak_filter_numbers()
    assert not np.allclose(numbers["response"], convolution.SEED_PEAK_RESPONSE, atol=5e-5)
    assert round(numbers["max_difference_to_printed"], 2) == 1.08
    assert round(numbers["best_3tap_fit_residual"], 2) == 0.65  # no 3-tap filter maps u to y
    assert numbers["printed_max_pool_point"] != 5


# --- 4. would backprop turn 3 random numbers into [-1, 1, -1]? --------------------------------

def test_4_peak_labels_are_local_peaks():
    x, y = peak_filter.peak_sequences(5, 12, np.random.default_rng(0))
    for row, labels in zip(x[..., 0], y[..., 0]):
        assert [i + 2 for i in np.flatnonzero(labels)] == convolution.local_peaks(row)


@pytest.mark.slow
def test_4_every_random_start_learns_the_same_peak_filter_close_to_minus1_2_minus1():
    result = peak_filter.learn_peak_filter()  # the page's 5 starts, 2,048 sequences, 20 epochs
    starts = [learned["initial_cosine"] for learned in result["seeds"]]
    assert len(starts) == 5 and (round(min(starts), 2), round(max(starts), 2)) == (-0.76, 0.77)
    assert round(result["fixed_filter_accuracy"], 3) == 0.834
    for learned in result["seeds"]:  # every start, not one
        seed = learned["seed"]
        np.testing.assert_allclose(learned["normalised"], [-0.44, 0.79, -0.44], atol=0.015,
                                   err_msg=f"seed {seed}")  # docs/claims.md: each within 0.015
        assert 0.955 - TRAINED <= learned["cosine_with_peak_filter"] <= 0.960 + TRAINED, seed
        # docs/claims.md: 0.998-0.999, to the digits printed (a converged logistic fit varies far less)
        assert round(learned["cosine_with_second_difference"], 3) in (0.998, 0.999), seed
        assert learned["accuracy"] == pytest.approx(0.905, abs=TRAINED), seed
    biases = [learned["bias"] for learned in result["seeds"]]  # docs/claims.md: -1.06 to -1.14
    assert min(biases) == pytest.approx(-1.14, abs=TRAINED)
    assert max(biases) == pytest.approx(-1.06, abs=TRAINED)


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
    initializer = _saved_model(frozen).get_layer("conv1").kernel_initializer
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


@pytest.mark.slow
def test_6_frozen_designed_filters_stay_and_the_rest_learns(demo):
    run = demo.run("sobel_x", FROZEN)
    expected = np.asarray(keras_initializers.DesignedFilters("sobel_x")((3, 3, 1, 32)))
    np.testing.assert_allclose(run["before"]["conv1"], expected, atol=1e-7)
    assert np.array_equal(run["before"]["conv1"], run["after"]["conv1"])
    assert not np.array_equal(run["before"]["conv2"], run["after"]["conv2"])
    config = _saved_model(run).get_layer("conv1").kernel_initializer.get_config()
    assert config == {"name": "sobel_x", "gain": 1.0, "sigma": 1.0}


@pytest.mark.slow
def test_6_frozen_edge_filters_match_the_learned_ones_and_blobs_fall_behind(demo):
    frozen = {name: demo.run(name, FROZEN)["test_accuracy"]
              for name in ("sobel_x", "sobel_y", "peak", "gaussian", "laplacian")}
    readme = {"sobel_x": 0.944, "sobel_y": 0.933, "peak": 0.886, "gaussian": 0.862,
              "laplacian": 0.839}
    for name, expected in readme.items():
        assert frozen[name] == pytest.approx(expected, abs=TRAINED), name
    learned = demo.run("glorot_uniform")["test_accuracy"]
    assert learned == pytest.approx(0.929, abs=TRAINED)
    assert demo.run("glorot_uniform", FROZEN)["test_accuracy"] == pytest.approx(0.902,
                                                                                 abs=TRAINED)
    # docs/claims.md: match or beat, "the test allows them 1 point below"
    assert min(frozen["sobel_x"], frozen["sobel_y"]) >= learned - TRAINED
    assert max(frozen["peak"], frozen["gaussian"], frozen["laplacian"]) < learned
    trained = {name: demo.run(name)["test_accuracy"] for name in ("laplacian", "peak")}
    assert trained["laplacian"] == pytest.approx(0.896, abs=TRAINED)
    assert trained["peak"] == pytest.approx(0.906, abs=TRAINED)
    assert all(trained[name] > frozen[name] for name in trained)  # training narrows the gap


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

def test_7_measured_kernel_respects_sqrt_bound_and_violates_the_seeds(demo):
    kernel = demo.run("glorot_uniform")["before"]["conv1"]
    numbers = initialization.glorot_bounds_numbers(kernel)
    assert (numbers["fan_in"], numbers["fan_out"]) == (9, 288)
    assert numbers["limit"] == pytest.approx(math.sqrt(6 / 297))
    assert round(numbers["limit"], 4) == 0.1421
    assert numbers["seed_formula_bound"] == pytest.approx(6 / 297)
    assert numbers["fraction_outside_limit"] == 0
    assert round(numbers["max_abs_weight"], 4) == 0.1420
    assert round(numbers["fraction_outside_seed_bounds"], 2) == 0.85


# --- 8. the filters are the weights -----------------------------------------------------------

def test_8_conv1_trainable_weights_are_exactly_kernel_and_bias():
    from kexp.network.models import build_model

    model = build_model("convnet", seed=0)
    report = learned_filters.conv1_weights_report(model)
    assert [shape for _, shape in report["conv1_weights"]] == [(3, 3, 1, 32), (32,)]
    assert report["conv1_parameters"] == report["conv1_count_params"] == 320
    assert report["kernel_is_first"] and report["bias_is_second"]
    assert report["conv1_non_trainable"] == 0
    assert report["model_trainable_parameters"] == report["model_count_params"] == 34826
    conv1 = model.get_layer("conv1")
    kernel = np.random.default_rng(0).normal(size=(3, 3, 1, 32)).astype(np.float32)
    conv1.kernel.assign(kernel)
    images = np.random.default_rng(1).random((1, 28, 28, 1)).astype(np.float32)
    expected = np.maximum(convolution.conv2d_layer_reference(images, kernel,
                                                             conv1.bias.numpy()), 0)
    np.testing.assert_allclose(np.asarray(conv1(images)), expected, atol=2e-6)  # float32


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


def test_9_the_readmes_digit_crop_matches_to_3e_8_and_the_seed_formula_is_off_by_0_48(tmp_path):
    result = cross_correlation.demo_conv_shapes(common.DemoContext(tmp_path))
    assert result["output_shape"] == [1, 3, 3, 32]
    assert result["max_diff_correlation"] < 5e-8  # docs/claims.md: 3e-8, "the test requires < 5e-8"
    assert round(result["max_diff_seed_formula"], 2) == 0.48
    assert result["max_diff_seed_formula_flipped"] < 5e-8


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


def _edge_scores(run: dict) -> dict:
    return {(layer, when): analysis.edge_likeness(run[when][layer])
            for layer in ("conv1", "conv2") for when in ("before", "after")}


def test_10_edge_likeness_at_convergence(converged):
    score = _edge_scores(converged.converged())
    start, end = score["conv1", "before"], score["conv1", "after"]
    assert round(start.mean(), 3) == 0.488  # the seeded start, the same as the 3-epoch run's
    assert end.mean() == pytest.approx(0.706, abs=TRAINED)
    # docs/claims.md: 27 of 32 rose at convergence; the 5 others fell by 0.02-0.08
    assert int((end > start).sum()) == 27
    assert np.sort(end - start)[:5] == pytest.approx([-0.08, -0.08, -0.06, -0.04, -0.02],
                                                     abs=TRAINED)
    top_quarter = np.sort(end)[-8:]
    assert top_quarter.min() == pytest.approx(0.91, abs=TRAINED)
    assert top_quarter.max() == pytest.approx(0.98, abs=TRAINED)
    lowest_quarter = np.sort(end)[:8]  # docs/claims.md: 0.30-0.52, around the start's mean 0.488
    assert lowest_quarter.min() == pytest.approx(0.30, abs=TRAINED)
    assert lowest_quarter.max() == pytest.approx(0.52, abs=TRAINED)
    assert round(score["conv2", "before"].mean(), 3) == 0.453
    assert score["conv2", "after"].mean() == pytest.approx(0.590, abs=TRAINED)


def test_10_edge_likeness_after_3_epochs(converged):
    score = _edge_scores(converged.run("glorot_uniform"))  # learning rate 1e-3, 3 epochs
    start, end = score["conv1", "before"], score["conv1", "after"]
    assert start.shape == end.shape == (32,)
    assert round(start.mean(), 3) == 0.488
    assert end.mean() == pytest.approx(0.605, abs=TRAINED)
    # docs/claims.md: 30 of 32 rose, "the test accepts 29-31" (two filters moved by less than 0.004)
    assert 29 <= int((end > start).sum()) <= 31
    top_quarter = np.sort(end)[-8:]
    assert top_quarter.min() == pytest.approx(0.82, abs=TRAINED)
    assert top_quarter.max() == pytest.approx(0.99, abs=TRAINED)
    assert round(score["conv2", "before"].mean(), 3) == 0.453
    assert score["conv2", "after"].mean() == pytest.approx(0.534, abs=TRAINED)
    assert score["conv2", "before"].mean() < score["conv2", "after"].mean() < end.mean()


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
    result = cross_correlation.cross_correlation_check()  # docs/claims.md's data and seed
    assert result["output_shape"] == [2, 5, 4, 4]
    assert result["vs_cross_correlation"] < 5e-6  # docs/claims.md: 3e-6, "the test requires < 5e-6"
    assert result["vs_convolution_flipped_kernel"] < 5e-6
    assert round(result["vs_convolution_same_kernel"]) == 19


def test_12_fast_batch_correlation_matches_the_loops():
    rng = np.random.default_rng(0)
    images, kernel = rng.random((3, 8, 9)), rng.normal(size=(5, 5))
    expected = np.stack([convolution.correlate2d_valid(image, kernel) for image in images])
    np.testing.assert_allclose(convolution.correlate2d_valid_batch(images, kernel), expected)


# --- 13. the flip does not matter for learning ------------------------------------------------

def test_13_true_convolution_layer_learns_the_flipped_kernels_bit_for_bit():
    result = flip_invariance.flip_training_pair()  # docs/claims.md's 40 SGD steps
    assert len(result["losses"]) == 40
    assert result["kernel_movement"] == pytest.approx(0.15, abs=TRAINED)  # it did learn
    assert result["max_kernel_gap"] == 0.0  # exactly the rotated kernels at every step
    assert result["max_loss_gap"] == 0.0
    assert result["max_output_gap"] == 0.0


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


@pytest.mark.slow
def test_14_a_conv_layer_learns_the_gaussian_blur():
    result = gaussian_blur.learn_gaussian_blur()  # docs/claims.md's 1,000 digits, 10 epochs
    assert round(result["initial_relative_error"], 1) == 3.7
    assert result["relative_error"] < 1e-5  # docs/claims.md: 3.3e-6 in its run
    assert result["max_abs_error"] < 1e-6  # docs/claims.md: 2.7e-7
    box = np.full((5, 5), 1 / 25)
    assert np.linalg.norm(result["learned"] - box) > 0.1


# --- the command ------------------------------------------------------------------------------

def test_demo_command_lists_runs_and_rejects(tmp_path, capsys):
    from kexp import cli

    assert cli.main(["demo", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 16 and listed[2].split()[1] == "peak_filter"
    assert listed[15].split()[:2] == ["16", "sgd_identity"]
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
    code = ("import sys, kexp.experiments.demos.command, kexp.filters.convolution; "
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib')))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert output == "False"


# --- 15. are second-layer filters more complex than first-layer edge detectors? ------------

def test_15_single_orientation_fraction_tells_simple_from_complex_patterns():
    score = {name: analysis.single_orientation_fraction(pattern[None])[0]
             for name, pattern in filter_complexity.reference_patterns().items()}
    # docs/claims.md: a straight grating 0.94, a straight stroke 0.80, a cross 0.35, noise 0.27, a ring 0.19
    assert {name: round(value, 2) for name, value in score.items()} == {
        "grating": 0.94, "stroke": 0.80, "cross": 0.35, "noise": 0.27, "ring": 0.19}
    rotated = analysis.single_orientation_fraction(
        np.rot90(filter_complexity.reference_patterns()["stroke"])[None])[0]
    assert rotated == pytest.approx(score["stroke"], abs=0.02)
    stripes = np.tile([1.0, 0.0], (28, 14))
    assert analysis.pattern_fraction(np.full((1, 28, 28), 0.3))[0] < 1e-9
    assert analysis.pattern_fraction(stripes[None])[0] == pytest.approx(0.5)


def _complexity(run_dir) -> tuple[dict, dict]:
    """A run's single-orientation means and brightness-detector counts, by layer_state."""
    numbers = filter_complexity.complexity_numbers(filter_views.read_optimal_inputs(run_dir))
    return ({key: entry["single_orientation_mean"] for key, entry in numbers.items()},
            {key: entry["brightness_detectors"] for key, entry in numbers.items()})


def test_15_in_the_demo_run_conv2_becomes_oriented_and_conv1_counts_ink(demo):
    mean, bright = _complexity(demo.run("glorot_uniform")["run_dir"])
    # docs/claims.md: conv1 0.52 at the random start and 0.56 after 3 epochs, conv2 0.32 and 0.48.
    readme = {"conv1_before": 0.52, "conv1_after": 0.56, "conv2_before": 0.32,
              "conv2_after": 0.48}
    for key, expected in readme.items():
        assert mean[key] == pytest.approx(expected, abs=TRAINED), key
    # docs/claims.md: 19 of conv1's 32 filters were brightness detectors after training (5 at the start)
    assert bright == {"conv1_before": 5, "conv1_after": 19, "conv2_before": 0, "conv2_after": 0}


def test_15_at_convergence_conv2_scores_close_to_conv1(converged):
    run = converged.converged()
    mean, bright = _complexity(run["run_dir"])
    # docs/claims.md: the default recipe starts from the demo run's kernels (conv1 0.52, conv2 0.32);
    # after its 60 epochs conv2 0.57 against conv1's 0.54, and 2 of conv1's filters were
    # brightness detectors (5 at the start).
    for layer in ("conv1", "conv2"):
        assert np.array_equal(run["before"][layer], converged.run("glorot_uniform")["before"][layer])
    readme = {"conv1_before": 0.52, "conv1_after": 0.54, "conv2_before": 0.32,
              "conv2_after": 0.57}
    for key, expected in readme.items():
        assert mean[key] == pytest.approx(expected, abs=TRAINED), key
    assert bright == {"conv1_before": 5, "conv1_after": 2, "conv2_before": 0, "conv2_after": 0}


# The README's commands: `make train` (seed 0) scored 98.7% on the 1,000 held-out offline digits;
# the README states this bound (the recipe's 98.5% target), which leaves room for CPUs' rounding.
# Here, beside the claims that read the same default run (one worker trains it once).
MAKE_TRAIN_LEAST_TEST_ACCURACY = 0.985


def test_make_train_reaches_the_readmes_accuracy(default_run):
    recorded = json.loads((default_run / runs.CONFIG_FILE).read_text())
    assert TrainConfig.from_dict(recorded["config"]) == TrainConfig(
        data="mnist-5k", runs_dir=recorded["config"]["runs_dir"])  # the defaults: make train's
    assert recorded["data"]["source"] == "mnist-5k"
    assert recorded["data"]["used_test_samples"] == 1000
    status = runs.read_status(default_run)
    assert status["status"] == runs.STATUS_FINISHED
    assert status["epochs_completed"] == TrainConfig().epochs
    assert status["test_accuracy"] >= MAKE_TRAIN_LEAST_TEST_ACCURACY, status["test_accuracy"]
