"""Keras callbacks that record what training does to the filters, usable in anybody's `fit`.

`KernelSnapshots` saves the kernel of every Conv2D layer before training, during it and after it
as npz files keyed by layer path in Keras' layout (kh, kw, c_in, c_out); `EpochLog` appends one
row per epoch to a CSV; `StopOnNonFinite` fails a run whose numbers stopped being finite (the
resume checkpoint is kexp.training.checkpoint's). The training thread only reads the numbers,
in one compiled call (`VariableReader`); the files are written atomically by a background
thread (kexp.storage.background_writes) while the next epoch trains. File names and labels come
from kexp.storage.runs.
"""

from __future__ import annotations

import csv
import functools
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kexp.network.conv_layers import conv_layers
from kexp.storage import atomic, background_writes, runs
from kexp.training import stop_signals
from kexp.validation import check_whole


def copies(values: list[tf.Variable]) -> list[tf.Tensor]:
    return [tf.identity(value) for value in values]


class VariableReader:
    """`compute` (a copy of each by default) of a list of variables in one compiled TensorFlow
    call, for callbacks that look at the model every epoch without stalling training: variable
    by variable, eager reads cost about 0.1 ms each (28 for convnet_dense and its optimizer),
    one compiled call a fraction of a millisecond for all. Copies keep their values while
    training goes on (TensorFlow copies a variable's buffer before updating it while a read of
    it is held), so a background thread can turn them into numpy later. The call is traced
    again only when the variables change."""

    def __init__(self, compute=copies):
        self.compute = compute
        self._variables_key: tuple | None = None
        self._read = None

    def __call__(self, variables: list[keras.Variable]):
        key = tuple(map(id, variables))
        if key != self._variables_key:
            values = [variable.value for variable in variables]
            self._read = tf.function(lambda: self.compute(values), autograph=False)
            self._variables_key = key
        return self._read()

    def by_name(self, variables: dict[str, keras.Variable]) -> dict[str, tf.Tensor]:
        """The copies of `variables` under their names."""
        return dict(zip(variables, self(list(variables.values()))))


def float32_arrays(tensors: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
    return {name: np.asarray(tensor, dtype=np.float32) for name, tensor in tensors.items()}


class SerializableCallback(keras.callbacks.Callback):
    """Keras' contract for kexp's callbacks: `get_config()` returns the constructor's arguments
    and `from_config()` rebuilds the callback from them, so a callback saved with a model (or
    in a config file) comes back the same."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


@keras.saving.register_keras_serializable(package="kexp")
class KernelSnapshots(SerializableCallback):
    """Save the kernels of every Conv2D layer, nested ones included (keys: layer paths, see
    conv_layers; each layer's bias beside them under "<layer path>/bias"), to `directory`:
    initial.npz at the start, epoch_NNN.npz every `every_epochs` epochs,
    epoch_NNN_batch_BBBBB.npz every `every_batches` batches of the first epoch (where filters
    change most), and final.npz at the end. The epoch and batch snapshots are written by
    `writer` (a background thread; pass one writer to several callbacks to keep their files in
    order); initial and final ones, and `save()`, land before the call returns.

    Keras skips `on_train_end` on Ctrl-C; call `save(kexp.storage.runs.INTERRUPTED)` from your own
    `except`.
    """

    def __init__(self, directory: str | os.PathLike, every_epochs: int = 1,
                 every_batches: int = 0, layer_names: list[str] | None = None,
                 writer: background_writes.OrderedWriter | None = None):
        super().__init__()
        check_whole("every_epochs", every_epochs, 1)
        check_whole("every_batches", every_batches, 0, note=" (0: per epoch only)")
        self.directory = Path(directory)
        self.every_epochs = every_epochs
        self.every_batches = every_batches
        # Keras runs batch hooks synchronously (a device sync every step) when a callback
        # overrides one, unless the callback says it is async-safe: true while they do nothing.
        self.async_safe = every_batches == 0
        self.layer_names = list(layer_names) if layer_names else None
        self.writer = writer or background_writes.OrderedWriter()
        self.saved: list[Path] = []  # snapshots that have landed, in order
        self._read = VariableReader()
        self._epoch = 0  # 1-based epoch in progress

    def get_config(self) -> dict:
        return {"directory": str(self.directory), "every_epochs": self.every_epochs,
                "every_batches": self.every_batches, "layer_names": self.layer_names}

    def _variables(self) -> dict[str, keras.Variable]:
        """The kernel variable of each selected layer and its bias under "<path>/bias"."""
        layers = conv_layers(self.model)
        if self.layer_names:
            missing = [name for name in self.layer_names if name not in layers]
            if missing:
                raise ValueError(f"Invalid value for `layer_names`: {missing}. Expected Conv2D "
                                 f"layer paths of this model: {', '.join(layers)}.")
            layers = {name: layers[name] for name in self.layer_names}
        found = {}
        for path, layer in layers.items():
            found[path] = layer.kernel
            if layer.use_bias:
                found[f"{path}{runs.BIAS_SUFFIX}"] = layer.bias
        return found

    def kernels(self) -> dict[str, np.ndarray]:
        """The selected layers' kernels now, by layer path, as float32 numpy arrays."""
        arrays = float32_arrays(self._read.by_name(self._variables()))
        return {path: array for path, array in arrays.items()
                if not path.endswith(runs.BIAS_SUFFIX)}

    def _write(self, path: Path, tensors: dict[str, tf.Tensor]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.saved.append(atomic.write_npz_atomic(path, float32_arrays(tensors)))

    def save(self, label: str) -> Path:
        """Write the current kernels, and their layers' biases under "<layer path>/bias", to
        `<directory>/<label>.npz` atomically, after the snapshots still being written."""
        path = self.directory / runs.snapshot_name(label)
        tensors = self._read.by_name(self._variables())
        self.writer.wait()
        self._write(path, tensors)
        return path

    def save_in_background(self, label: str) -> Path:
        """Read the current kernels now and hand their file to the writer; returns its path."""
        path = self.directory / runs.snapshot_name(label)
        self.writer.submit(functools.partial(self._write, path,
                                              self._read.by_name(self._variables())))
        return path

    def on_train_begin(self, logs=None):
        if not (self.directory / runs.snapshot_name(runs.INITIAL)).exists():
            self.save(runs.INITIAL)  # a resumed run keeps its start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.every_batches and self._epoch == 1 and (batch + 1) % self.every_batches == 0:
            self.save_in_background(runs.batch_label(self._epoch, batch + 1))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.save_in_background(runs.epoch_label(epoch + 1))

    def on_train_end(self, logs=None):
        self.save(runs.FINAL)


@keras.saving.register_keras_serializable(package="kexp")
class EpochLog(SerializableCallback):
    """Append one CSV row per finished epoch (epoch, seconds, then Keras' metrics), so the
    history of an interrupted or crashed run is kept up to its last epoch. The row is appended
    and fsynced by `writer` (a background thread) and has landed when `fit` returns."""

    def __init__(self, path: str | os.PathLike,
                 writer: background_writes.OrderedWriter | None = None):
        super().__init__()
        self.path = Path(path)
        self.writer = writer or background_writes.OrderedWriter()
        self._epoch_started = 0.0

    def get_config(self) -> dict:
        return {"path": str(self.path)}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._epoch_started, 4)}
        row.update({key: float(value) for key, value in sorted((logs or {}).items())})
        self.writer.submit(functools.partial(self._append, row))

    def on_train_end(self, logs=None):
        self.writer.wait()

    def _append(self, row: dict) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with atomic.reporting_disk_full(self.path), \
                open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())


class StopWhenRequested(keras.callbacks.Callback):
    """Raise a stop signal that arrived during `fit` (kexp.training.stop_signals.deferred) where
    Keras calls back between steps, in the main thread: the start of the next training or
    validation batch, or an epoch's edge. Batch-begin hooks do not make Keras wait for the
    device, so the check costs a function call per batch."""

    def __init__(self):
        super().__init__()
        self.async_safe = True

    def on_train_batch_begin(self, batch, logs=None):
        stop_signals.raise_if_requested()

    def on_test_batch_begin(self, batch, logs=None):
        stop_signals.raise_if_requested()

    def on_epoch_begin(self, epoch, logs=None):
        stop_signals.raise_if_requested()

    def on_epoch_end(self, epoch, logs=None):
        stop_signals.raise_if_requested()


def tensorboard(log_dir: str | os.PathLike) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard callback with weight histograms every epoch (kexp's own figures draw the
    kernels: TensorBoard's write_images renders only conv1 and clips negatives)."""
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1, write_images=True,
                                       update_freq="epoch")


class TrainingDiverged(runs.RunError):
    """The loss or a weight stopped being a finite number; the run cannot recover from it."""


def _all_finite(values: list[tf.Variable]) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(value)) for value in values])


@keras.saving.register_keras_serializable(package="kexp")
class StopOnNonFinite(SerializableCallback):
    """Fail the run when the loss or any weight is NaN or infinite: at the start (an
    initializer whose numbers overflow float32) and after every epoch. Keras' TerminateOnNaN
    only stops quietly on a NaN loss, which would leave a run marked finished with useless
    filters; checking per epoch also keeps Keras' batch hooks asynchronous."""

    def __init__(self):
        super().__init__()
        self._finite = VariableReader(_all_finite)

    def on_train_begin(self, logs=None):
        self._check_weights("before training")

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            raise TrainingDiverged(f"The training loss became {loss} in epoch {epoch + 1}. "
                                   "Expected finite losses: lower --learning-rate or use an "
                                   "initializer with a smaller scale.")
        self._check_weights(f"after epoch {epoch + 1}")

    def _check_weights(self, when: str) -> None:
        weights = [variable for variable in self.model.trainable_variables
                   if keras.backend.is_float_dtype(variable.dtype)]
        if bool(self._finite(weights)):  # one compiled check; the culprit is looked up after
            return
        culprit = next(variable for variable in weights
                       if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))))
        raise TrainingDiverged(f"The weights of '{culprit.path}' are not finite {when}. "
                               "Expected finite weights: lower --learning-rate or use an "
                               "initializer with a smaller scale.")
