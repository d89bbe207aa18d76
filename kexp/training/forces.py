"""The forces that move each filter: the gradient of the loss with respect to every conv kernel,
split by the class of the digit that caused it.

The gradient of a mean loss is a sum over the digits, so it splits exactly into one part per
class: part c is (1/N) times the sum of the per-digit gradients of class c, and the parts add up
to the full-batch gradient. Minus a part is that class's *push* on the filter. `filter_gradients`
computes the parts for any Keras model (conv layers found at any depth, as `KernelSnapshots`
finds them); `ForceSnapshots` records them during `kexp train` on a fixed sample of training
digits, at the start, at a few epochs and at the end, in views/forces.npz (drawn by
kexp.views.force_figures without TensorFlow).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kexp import config
from kexp.digits import data
from kexp.errors import KexpError
from kexp.network import conv_layers
from kexp.probes import filter_views
from kexp.storage import atomic, runs
from kexp.views import force_figures
from kexp.views.force_figures import (CLASSES_KEY, COUNTS_KEY, EPOCHS_KEY, GRADIENT_PREFIX,
                                      SAMPLE_KEY, SECONDS_KEY)

BY_CHOICES = ("class",)  # how filter_gradients splits the gradient
BATCH_SIZE = 256  # digits per compiled gradient call
SAMPLE_PER_CLASS = 100  # training digits per class that every run's forces are computed on
FORCE_LAYERS = config.CONV_LAYERS  # the layers a run records
MOMENT_FRACTIONS = (0.25, 0.5, 0.75)  # besides the start, epoch 1 and the end


class ForcesError(KexpError):
    """Arguments filter_gradients cannot work with."""


def per_sample_loss(model: keras.Model):
    """The model's compiled loss as a function of (labels, predictions) that returns one loss per
    digit (unreduced); sparse categorical cross-entropy for a model compiled without one."""
    loss = getattr(model, "loss", None) or "sparse_categorical_crossentropy"
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    return keras.losses.get(loss)


class ClassGradients:
    """Per-class gradients of the mean loss over (x, y) with respect to the kernels of `layers`
    (path -> Conv2D), frozen ones included, with dropout and other training-only layers off. One
    compiled call per batch of one class; reuse the object to trace once."""

    def __init__(self, model: keras.Model, layers: dict[str, keras.layers.Conv2D],
                 batch_size: int = BATCH_SIZE):
        self.model, self.layers, self.batch_size = model, layers, batch_size
        loss = per_sample_loss(model)
        kernels = [layer.kernel for layer in layers.values()]

        def gradients(images, labels, digits):
            with tf.GradientTape() as tape:
                values = [kernel.value for kernel in kernels]
                for value in values:
                    tape.watch(value)
                total = tf.reduce_sum(loss(labels, model(images, training=False)))
                mean_part = total / tf.cast(digits, total.dtype)
            return tape.gradient(mean_part, values)

        self._gradients = tf.function(gradients, reduce_retracing=True)

    def __call__(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
        """path -> float64 (n_classes, kh, kw, c_in, c_out); row c is class c's part."""
        found = {path: np.zeros((n_classes, *layer.kernel.shape))
                 for path, layer in self.layers.items()}
        digits = tf.constant(len(y), tf.int64)
        for label in range(n_classes):
            members = np.flatnonzero(y == label)
            for start in range(0, len(members), self.batch_size):
                chosen = members[start:start + self.batch_size]
                parts = self._gradients(tf.constant(x[chosen]), tf.constant(y[chosen]), digits)
                for array, part in zip(found.values(), parts):
                    array[label] += np.asarray(part, dtype=np.float64)
        return found


def _output_classes(model: keras.Model) -> int | None:
    try:
        return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def filter_gradients(model: keras.Model, x, y, by: str = "class", layers=None,
                     batch_size: int = BATCH_SIZE) -> dict[str, np.ndarray]:
    """The gradient of the model's mean loss over (x, y) with respect to every Conv2D kernel (or
    the layer paths in `layers`), split by the class of each digit: layer path -> float64 array
    (n_classes, kh, kw, c_in, c_out) whose row c is the part of class c (zeros for a class
    without digits). The rows add up to the full-batch gradient; minus a row is the push of
    that class. n_classes is the model's number of outputs (or the largest label + 1). Dropout
    is off: the force of the model as it predicts, not of one random mask."""
    if by not in BY_CHOICES:
        raise ForcesError(f"Invalid value for `by`: {by!r}. Expected one of: "
                          f"{', '.join(BY_CHOICES)}.")
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ForcesError(f"Invalid value for `y`: shape {labels.shape}, dtype {labels.dtype}. "
                          "Expected a non-empty 1-D array of integer class labels.")
    if labels.min() < 0 or len(x) != len(labels):
        raise ForcesError(f"Invalid value for `y`: {len(labels)} labels from {labels.min()} for "
                          f"{len(x)} images. Expected one label >= 0 per image.")
    found = conv_layers.conv_layers(model)
    unknown = [name for name in (layers or ()) if name not in found]
    if unknown or not found:
        raise ForcesError(f"Invalid value for `layers`: {unknown or layers!r}. Expected Conv2D "
                          f"layer paths of this model: {', '.join(found) or 'none'}.")
    chosen = {name: found[name] for name in (layers or found)}
    n_classes = max(_output_classes(model) or 0, int(labels.max()) + 1)
    return ClassGradients(model, chosen, batch_size)(np.asarray(x), labels, n_classes)


def moment_epochs(epochs: int) -> list[int]:
    """Completed epochs after which a run records its forces: 0 (the start), 1, a quarter,
    half and three quarters of the way, and the end."""
    chosen = {0, 1, epochs} | {round(epochs * fraction) for fraction in MOMENT_FRACTIONS}
    return sorted(epoch for epoch in chosen if 0 <= epoch <= epochs)


def sample_indices(labels: np.ndarray, per_class: int = SAMPLE_PER_CLASS) -> np.ndarray:
    """The training digits whose forces a run records: `per_class` of each class, drawn with
    the probe digits' fixed seed, so every run of the same digits uses the same ones."""
    return filter_views.probe_indices(labels, per_class)


class ForceSnapshots(keras.callbacks.Callback):
    """Record the per-class gradients of the conv kernels of `layer_names` on fixed digits
    (`images`, model inputs, and `labels`) after the completed epochs of
    `moment_epochs(epochs)`, into the npz at `path` (rewritten whole, atomically, at each
    moment; by `writer` in the background when given). A resumed run (`first_epoch` > 0) keeps
    the moments recorded before. Each moment's computing seconds are kept beside it."""

    def __init__(self, path: str | Path, images: np.ndarray, labels: np.ndarray, epochs: int,
                 first_epoch: int = 0, layer_names=FORCE_LAYERS, writer=None,
                 sample: np.ndarray | None = None):
        super().__init__()
        self.path, self.images, self.labels = Path(path), images, np.asarray(labels)
        self.moments = moment_epochs(epochs)
        self.epoch = first_epoch
        self.layer_names = tuple(layer_names)
        self.writer = writer
        self.sample = sample
        self.n_classes = int(self.labels.max()) + 1
        self.recorded: dict[int, tuple[dict[str, np.ndarray], float]] = {}
        self._gradients: ClassGradients | None = None

    def on_train_begin(self, logs=None):
        if self.epoch:
            self.recorded = read_recorded(self.path)
        found = conv_layers.conv_layers(self.model)
        layers = {name: found[name] for name in self.layer_names if name in found}
        self._gradients = ClassGradients(self.model, layers) if layers else None
        self._record_if_due()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._record_if_due()

    def on_train_end(self, logs=None):
        self._record_if_due(final=True)
        if self.writer is not None:
            self.writer.wait()

    def _record_if_due(self, final: bool = False) -> None:
        if self._gradients is None or self.epoch in self.recorded:
            return
        if not final and self.epoch not in self.moments:
            return
        started = time.perf_counter()
        found = self._gradients(self.images, self.labels, self.n_classes)
        self.recorded[self.epoch] = ({path: array.astype(np.float32)
                                      for path, array in found.items()},
                                     time.perf_counter() - started)
        arrays = self.arrays()
        if self.writer is None:
            self._write(arrays)
        else:
            self.writer.submit(lambda: self._write(arrays))

    def arrays(self) -> dict[str, np.ndarray]:
        """What forces.npz holds: the moments' epochs, classes, digits per class, the sample's
        indices, seconds per moment, and per layer path the gradients by moment and class."""
        epochs = sorted(self.recorded)
        arrays = {EPOCHS_KEY: np.array(epochs, dtype=np.int64),
                  CLASSES_KEY: np.arange(self.n_classes, dtype=np.int64),
                  COUNTS_KEY: np.bincount(self.labels, minlength=self.n_classes),
                  SECONDS_KEY: np.array([self.recorded[epoch][1] for epoch in epochs])}
        if self.sample is not None:
            arrays[SAMPLE_KEY] = np.asarray(self.sample, dtype=np.int64)
        for path in self.recorded[epochs[0]][0]:
            arrays[GRADIENT_PREFIX + path] = np.stack([self.recorded[epoch][0][path]
                                                       for epoch in epochs])
        return arrays

    def _write(self, arrays: dict[str, np.ndarray]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_npz_atomic(self.path, arrays)


def read_recorded(path: Path) -> dict[int, tuple[dict[str, np.ndarray], float]]:
    """The moments an earlier attempt of the run recorded ({} when there is no readable file:
    a resumed run then records from where it is)."""
    try:
        found = force_figures.read_forces_file(path)
    except runs.RunError:
        return {}
    return {int(epoch): ({layer: array[index] for layer, array in found["gradients"].items()},
                         float(found["seconds"][index]))
            for index, epoch in enumerate(found["epochs"])}


def run_force_snapshots(run_dir: Path, images: np.ndarray, labels: np.ndarray, epochs: int,
                        first_epoch: int, writer=None) -> ForceSnapshots:
    """The forces callback of a `kexp train` run: the fixed sample of its training digits
    (uint8 images and labels; never test digits), written to views/forces.npz."""
    chosen = sample_indices(labels)
    return ForceSnapshots(Path(run_dir) / runs.VIEWS_DIR / runs.FORCES_FILE,
                          data.to_model_inputs(images[chosen]), labels[chosen], epochs,
                          first_epoch, writer=writer, sample=chosen)
