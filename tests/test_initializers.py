"""Initializer names, parameters and the theory kexp draws its bounds and densities from."""

import math

import numpy as np
import pytest

from kexp.network import initializers, keras_initializers
from kexp.network.initializers import InitializerError, parse_spec, theory

CONV1_SHAPE = (3, 3, 1, 32)
CONV2_SHAPE = (3, 3, 32, 32)


def draw(spec, shape, seed=1):
    return np.asarray(keras_initializers.build_keras_initializer(spec, seed=seed)(shape))


@pytest.mark.parametrize("name", list(initializers.KERAS_INITIALIZERS))
def test_every_keras_name_builds_a_kernel(name):
    kernel = draw(name, CONV1_SHAPE)
    assert kernel.shape == CONV1_SHAPE
    assert np.all(np.isfinite(kernel))


def test_unknown_name_is_rejected_with_the_valid_names():
    with pytest.raises(InitializerError, match=r"Invalid value for `init`: 'glorot_unifrom'\. "
                       r"Expected one of: glorot_uniform, glorot_normal, .*he_normal") as error:
        parse_spec("glorot_unifrom")
    assert "Did you mean 'glorot_uniform'" in str(error.value)


@pytest.mark.parametrize("spec", ["glorot_uniform ", "Glorot_Uniform", "", "identity"])
def test_near_misses_keras_would_explain_badly_are_rejected(spec):
    with pytest.raises(InitializerError, match="Expected one of"):
        parse_spec(spec)


@pytest.mark.parametrize("spec, message", [
    ("random_normal:stddev=-1", r"`random_normal:stddev`: '-1'\. Expected a positive number"),
    ("random_normal:stddev=abc", r"'abc'\. Expected a positive number"),
    ("random_normal:bogus=1", r"Invalid parameter for `random_normal`: 'bogus=1'"),
    ("glorot_uniform:scale=2", r"Expected no parameters"),
    ("variance_scaling:mode=fan_sideways", r"Expected one of: fan_in, fan_out, fan_avg"),
    ("random_uniform:minval=1,maxval=0", r"minval=1.0 must be below maxval=0.0"),
    # A parameter given twice would silently take its last value.
    ("random_normal:stddev=0.5,stddev=7", r"'stddev' is given twice in 'random_normal:stddev="),
    ("random_uniform:minval=-1,maxval=1,minval=-2", r"'minval' is given twice"),
    ("variance_scaling:mode=fan_in,mode=fan_out", r"'mode' is given twice"),
    # Values beyond float32 would make the weights inf.
    ("random_normal:stddev=1e40", r"`random_normal:stddev`: '1e40'\. Expected a positive number "
                                  r"\(at most 3\.403e\+38"),
    ("random_normal:mean=-4e38", r"`random_normal:mean`: '-4e38'\. Expected a number"),
    ("random_uniform:maxval=1e39", r"`random_uniform:maxval`: '1e39'"),
    ("orthogonal:gain=1e300", r"`orthogonal:gain`: '1e300'"),
    ("gaussian:sigma=3.5e38", r"`gaussian:sigma`: '3.5e38'"),
])
def test_malformed_parameters_are_rejected(spec, message):
    with pytest.raises(InitializerError, match=message):
        parse_spec(spec)


def test_parameters_reach_the_keras_initializer():
    kernel = draw("random_normal:mean=1,stddev=0.5", (3, 3, 32, 64))
    assert abs(kernel.mean() - 1.0) < 0.02
    assert abs(kernel.std() - 0.5) < 0.02


def test_glorot_uniform_conv1_limit_is_the_square_root_formula():
    limit = theory("glorot_uniform", CONV1_SHAPE).high
    assert limit == pytest.approx(math.sqrt(6 / (9 + 288)))
    assert limit == pytest.approx(0.1421, abs=1e-4)
    assert initializers.compute_fans(CONV1_SHAPE) == (9, 288)


def test_glorot_uniform_kernels_respect_the_limit_and_its_variance():
    kernel = draw("glorot_uniform", CONV2_SHAPE)
    expected = theory("glorot_uniform", CONV2_SHAPE)
    assert np.abs(kernel).max() <= expected.high
    assert np.abs(kernel).max() > 0.97 * expected.high  # the whole range is used
    # variance of U(-l, l) is l^2/3; 9216 draws estimate it within a few percent
    assert kernel.var() == pytest.approx(expected.high**2 / 3, rel=0.05)


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "he_uniform",
                                  "lecun_normal", "lecun_uniform", "random_normal",
                                  "random_uniform", "truncated_normal", "orthogonal",
                                  "variance_scaling:scale=2,mode=fan_out,distribution=uniform",
                                  "variance_scaling:distribution=untruncated_normal"])
def test_measured_std_and_bounds_match_theory(name):
    kernel = draw(name, CONV2_SHAPE)
    expected = theory(name, CONV2_SHAPE)
    assert kernel.std() == pytest.approx(expected.std, rel=0.05)
    if expected.kind in ("uniform", "truncated_normal"):
        assert kernel.min() >= expected.low - 1e-6 and kernel.max() <= expected.high + 1e-6


def test_theory_cdf_fits_draws_and_rejects_a_wrong_distribution():
    kernel = np.sort(draw("he_normal", CONV2_SHAPE).ravel())
    empirical = np.arange(1, kernel.size + 1) / kernel.size
    right = np.abs(theory("he_normal", CONV2_SHAPE).cdf(kernel) - empirical).max()
    wrong = np.abs(theory("he_uniform", CONV2_SHAPE).cdf(kernel) - empirical).max()
    assert right < 1.36 / math.sqrt(kernel.size) * 1.5  # KS 5% critical value, with margin
    assert wrong > 3 * right


def test_constant_initializers_have_no_spread():
    assert np.all(draw("zeros", CONV1_SHAPE) == 0)
    assert np.all(draw("ones", CONV1_SHAPE) == 1)
    assert theory("zeros", CONV1_SHAPE).std == 0.0


def test_the_questions_formula_differs_from_keras():
    wrong_low, wrong_high = initializers.question_formula_bounds(CONV1_SHAPE)
    assert wrong_low > wrong_high  # written with the bounds swapped
    assert wrong_low == pytest.approx(6 / 297)  # no square root: 0.0202, not 0.1421
    assert theory("glorot_uniform", CONV1_SHAPE).high > 7 * wrong_low
