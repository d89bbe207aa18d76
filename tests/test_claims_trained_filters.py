"""docs/claims.md's claims 2, 10 and 15 about what training does to the filters, and `make
train`'s accuracy: judged at convergence on the default recipe's run (`DemoContext.converged`,
which is conftest's `default_run`, trained once per suite) and after the demos' 3 epochs
(conftest's `demo` runs, shared with the other claims' files). Numbers that come out of training
are checked to about 0.01 (float rounding differs between CPUs), the others to the digits the page
prints; where a test allows more, the page says so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from claim_checks import TRAINED
from kexp.config import TrainConfig
from kexp.experiments.demos import common, filter_complexity
from kexp.filters import analysis
from kexp.network import keras_initializers
from kexp.probes import filter_views
from kexp.storage import runs


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


# --- 15. are second-layer filters more complex than first-layer edge detectors? ------------

def test_15_single_orientation_fraction_tells_simple_from_complex_patterns():
    score = {name: analysis.single_orientation_fraction(pattern[None])[0]
             for name, pattern in filter_complexity.reference_patterns().items()}
    # docs/claims.md: a straight grating 0.94, a straight stroke 0.80, a cross 0.35, noise 0.27, a
    # ring 0.19
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
    # docs/claims.md: 19 of conv1's 32 filters were brightness detectors after training (5 at the
    # start)
    assert bright == {"conv1_before": 5, "conv1_after": 19, "conv2_before": 0, "conv2_after": 0}


def test_15_at_convergence_conv2_scores_close_to_conv1(converged):
    run = converged.converged()
    mean, bright = _complexity(run["run_dir"])
    # docs/claims.md: the default recipe starts from the demo run's kernels (conv1 0.52, conv2
    # 0.32); after its 60 epochs conv2 0.57 against conv1's 0.54, and 2 of conv1's filters were
    # brightness detectors (5 at the start).
    for layer in ("conv1", "conv2"):
        assert np.array_equal(run["before"][layer],
                              converged.run("glorot_uniform")["before"][layer])
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
