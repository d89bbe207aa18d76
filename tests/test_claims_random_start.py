"""docs/claims.md's claims 1 and 7 about the random start: the initial kernels of every random
initializer fit their stated distribution (and a wrong one is rejected), and glorot_uniform's
real bounds against the formula one of the questions writes. Claim 7 reads the demos' 3-epoch
glorot_uniform run (conftest's `demo`, shared with the other claims' files)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kexp.experiments.demos import common, initialization
from kexp.network import initializers


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


def test_1_ks_rejects_the_questions_formula_and_a_uniform_labelled_normal():
    values = initialization.draw_conv1_kernels("glorot_uniform", 32).ravel()
    high, low = initializers.question_formula_bounds(common.CONV1_SHAPE)
    question_theory = initializers.Theory("uniform", low=low, high=high)
    critical = initialization.ks_critical_value(values.size)
    assert initialization.ks_statistic(values, question_theory.cdf) > 10 * critical
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


# --- 7. glorot_uniform's real bounds vs the questions' formula --------------------------------

def test_7_measured_kernel_respects_sqrt_bound_and_violates_the_questions(demo):
    kernel = demo.run("glorot_uniform")["before"]["conv1"]
    numbers = initialization.glorot_bounds_numbers(kernel)
    assert (numbers["fan_in"], numbers["fan_out"]) == (9, 288)
    assert numbers["limit"] == pytest.approx(math.sqrt(6 / 297))
    assert round(numbers["limit"], 4) == 0.1421
    assert numbers["question_formula_bound"] == pytest.approx(6 / 297)
    assert numbers["fraction_outside_limit"] == 0
    assert round(numbers["max_abs_weight"], 4) == 0.1420
    assert round(numbers["fraction_outside_question_bounds"], 2) == 0.85
