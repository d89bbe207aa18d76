"""What the claims' test files (tests/test_claims_*.py) share: how closely a number that comes
out of training must match docs/claims.md, the layer the frozen variants keep, and a demo run's
saved model."""

from __future__ import annotations

import os

# Differences between two trainings of docs/claims.md's settings on different CPUs stay within
# this.
TRAINED = 0.01
FROZEN = ("conv1",)


def saved_model(run: dict):
    """The Keras model a demo run (`DemoContext.run`'s dict) saved."""
    import keras

    from kexp.storage import runs

    return keras.saving.load_model(os.path.join(run["run_dir"], runs.MODEL_FILE))
