"""Demo 16 at the settings docs/claims.md states: with plain SGD, conv1's change is rebuilt from
image patches and their weights alone (relative error <= 1e-5), and that page quotes the numbers
this training gives. About 15 s and 1.3 GB on 2 CPU cores."""

from __future__ import annotations

import numpy as np
import pytest

from kexp.experiments.demos import sgd_identity

pytestmark = pytest.mark.slow  # every test here trains a model

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def numbers():
    return sgd_identity.identity_numbers(sgd_identity.identity_training())


def test_the_rebuilt_change_equals_the_real_change(numbers):
    assert numbers["relative_error"] <= 1e-5
    assert numbers["max_filter_relative_error"] <= 1e-5
    np.testing.assert_allclose(numbers["rebuilt"], numbers["change"], rtol=0, atol=1e-9)
    assert np.linalg.norm(numbers["change"]) > 0.1  # the filters did move


def test_the_rebuild_fails_with_wrong_weights():
    """The check can fail: weights from another step size do not rebuild the change."""
    trained = sgd_identity.identity_training(digits=64, epochs=1)
    change = trained["final"] - trained["initial"]
    wrong = sgd_identity.rebuilt_change(trained["images"], trained["weights"], 0.9 *
                                        trained["learning_rate"])
    assert np.linalg.norm(wrong - change) / np.linalg.norm(change) > 0.05


def test_the_claims_page_quotes_the_demos_numbers(numbers, repo_root):
    claims = " ".join((repo_root / "docs" / "claims.md").read_text(encoding="utf-8").split())
    assert sgd_identity.identity_sentence(numbers) in claims
