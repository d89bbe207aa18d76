"""Time to accuracy (issue 8): kexp's default recipe against the old 5-epoch one, trained by
`kexp.training.trainer.train` in one bench run, with the held-out accuracy and the training
seconds so far recorded after every epoch.

Only the bench looks at the test digits during training, to time the recipes; kexp's training
never does (it validates on its own slice of the training digits and tests once at the end).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

from kexp.digits import data
from kexp.digits.inputs import prepare_data
from kexp.storage import runs
from kexp.training.trainer import train

from common import bench_config, log, spread

THRESHOLDS = (0.980, 0.985)
RECIPES = {
    "default": {},  # whatever kexp/config.py says
    "old": {"model": "mnist_cnn", "epochs": 5, "augment": False, "schedule": "constant",
            "learning_rate": 1e-3, "validation_fraction": 0.0},
}
RECIPE_FIELDS = ("model", "epochs", "augment", "schedule", "learning_rate",
                 "validation_fraction")


class HeldOutAccuracy(keras.callbacks.Callback):
    """After every epoch: accuracy on the held-out test digits and the wall seconds of training
    so far, this evaluation not counted. Placed last, so kexp's own callbacks are counted."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int):
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.epochs: list[dict] = []
        self._training_seconds = 0.0
        self._resumed = 0.0

    def on_train_begin(self, logs=None):
        self._resumed = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self._training_seconds += time.perf_counter() - self._resumed
        probabilities = self.model.predict(self.images, batch_size=self.batch_size, verbose=0)
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == self.labels))
        self.epochs.append({"epoch": epoch + 1, "seconds": self._training_seconds,
                            "test_accuracy": accuracy})
        self._resumed = time.perf_counter()


def first_reached(epochs: list[dict], threshold: float) -> dict | None:
    """The first epoch whose held-out accuracy is at least `threshold`, or None."""
    return next((row for row in epochs if row["test_accuracy"] >= threshold - 1e-9), None)


def train_recipe(changes: dict, seed: int, runs_dir: Path) -> dict:
    config = bench_config(seed=seed, runs_dir=str(runs_dir), **changes)
    prepared, _ = prepare_data(config)
    held_out = HeldOutAccuracy(data.to_model_inputs(prepared.x_test), prepared.y_test,
                               config.batch_size)
    with contextlib.redirect_stdout(sys.stderr):  # stdout: the table
        run_dir = train(config, extra_callbacks=[held_out], verbose=0)
    return {"seed": seed, "epochs": held_out.epochs, "test_digits": len(prepared.x_test),
            "final_test_accuracy": runs.read_status(run_dir)["test_accuracy"],
            "reached": {f"{threshold:.3f}": first_reached(held_out.epochs, threshold)
                        for threshold in THRESHOLDS},
            "recipe": {name: getattr(config, name) for name in RECIPE_FIELDS}}


def summarise_recipe(trainings: list[dict]) -> dict:
    """Seconds to each threshold over the seeds that reached it, and the final accuracies."""
    summary = {"recipe": trainings[0]["recipe"], "seeds": [run["seed"] for run in trainings],
               "test_digits": trainings[0]["test_digits"],
               "final_test_accuracy": spread([run["final_test_accuracy"] for run in trainings]),
               "training_seconds": spread([run["epochs"][-1]["seconds"] for run in trainings]),
               "thresholds": {}}
    for threshold in trainings[0]["reached"]:
        reached = [run["reached"][threshold] for run in trainings if run["reached"][threshold]]
        summary["thresholds"][threshold] = {
            "reached_in": len(reached), "of": len(trainings),
            "seconds": spread([row["seconds"] for row in reached]) if reached else None,
            "epoch": statistics.median(row["epoch"] for row in reached) if reached else None}
    return summary


def time_to_accuracy(seeds: list[int], runs_dir: Path) -> dict:
    """Both recipes for every seed, alternating; their trainings and summaries."""
    trainings: dict[str, list[dict]] = {name: [] for name in RECIPES}
    for index, seed in enumerate(seeds):
        names = list(RECIPES)[index % 2:] + list(RECIPES)[:index % 2]
        for name in names:
            log(f"time to accuracy: {name} recipe, seed {seed}")
            trainings[name].append(train_recipe(RECIPES[name], seed, runs_dir))
    return {"summary": {name: summarise_recipe(runs_of) for name, runs_of in trainings.items()},
            "trainings": trainings}
