"""Keras callbacks that record what training does to the filters, usable in anybody's `fit`.

`KernelSnapshots` saves the kernel of every Conv2D layer before training, during it and after it
as npz files keyed by layer path in Keras' layout (kh, kw, c_in, c_out); `EpochLog` appends one
row per epoch to a CSV; `EpochCheckpoint` keeps the state a resumed run continues from. They
write atomically, so a crash never leaves a half file. File names and labels come from kexp.runs.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path

import keras
import numpy as np

from kexp import atomic, files, runs



def conv_layers(model: keras.Model) -> dict[str, keras.layers.Conv2D]:
    """Every Conv2D layer of `model` at any depth, in order, by layer path: its name for a layer
    of `model` itself ("conv1"), and the names of the layers holding it, joined by "/", for one
    inside a nested block ("block/conv" for a Conv2D in a Sequential "block" used as a layer).

    The search goes down every layer that lists its layers in the public `.layers` attribute:
    a Sequential or functional sub-model, any keras.Model. (A custom layer that keeps a Conv2D in
    a plain attribute has no public list of its sublayers, so it is not searched.) A layer
    shared by two blocks is listed once, under its first path."""
    found: dict[str, keras.layers.Conv2D] = {}
    seen: set[int] = set()

    def visit(layers, prefix: str) -> None:
        for layer in layers:
            path = f"{prefix}{layer.name}"
            if isinstance(layer, keras.layers.Conv2D) and id(layer) not in seen:
                seen.add(id(layer))
                found[path] = layer
            elif isinstance(getattr(layer, "layers", None), (list, tuple)):
                visit(layer.layers, f"{path}/")

    visit(model.layers, "")
    return found


def conv_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Kernels of every Conv2D layer at any depth by layer path (see conv_layers), as float32
    numpy arrays."""
    return {path: np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
            for path, layer in conv_layers(model).items()}


class SerializableCallback(keras.callbacks.Callback):
    """Keras' contract for kexp's callbacks: `get_config()` returns the constructor's arguments
    and `from_config()` rebuilds the callback from them, so a callback saved with a model (or
    in a config file) comes back the same."""

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def conv_biases(model: keras.Model) -> dict[str, np.ndarray]:
    """Biases of every Conv2D layer that has one, by layer path, as float32 numpy arrays: with
    the kernels they are all a layer computes, so a feature map can be recomputed later."""
    return {path: np.asarray(keras.ops.convert_to_numpy(layer.bias), dtype=np.float32)
            for path, layer in conv_layers(model).items() if layer.use_bias}


@keras.saving.register_keras_serializable(package="kexp")
class KernelSnapshots(SerializableCallback):
    """Save the kernels of every Conv2D layer, nested ones included (keys: layer paths, see
    conv_layers; each layer's bias beside them under "<layer path>/bias"), to `directory`:
    initial.npz at the start, epoch_NNN.npz every `every_epochs` epochs, epoch_NNN_batch_BBBBB.npz every `every_batches` batches of the first epoch (where
    filters change most), and final.npz at the end.

    Keras skips `on_train_end` on Ctrl-C; call `save(kexp.runs.INTERRUPTED)` from your own
    `except`.
    """

    def __init__(self, directory: str | os.PathLike, every_epochs: int = 1,
                 every_batches: int = 0, layer_names: list[str] | None = None):
        super().__init__()
        if isinstance(every_epochs, bool) or not isinstance(every_epochs, int) or every_epochs < 1:
            raise ValueError(f"Invalid value for `every_epochs`: {every_epochs!r}. "
                             "Expected a whole number >= 1.")
        if isinstance(every_batches, bool) or not isinstance(every_batches, int) or every_batches < 0:
            raise ValueError(f"Invalid value for `every_batches`: {every_batches!r}. "
                             "Expected a whole number >= 0 (0: per epoch only).")
        self.directory = Path(directory)
        self.every_epochs = every_epochs
        self.every_batches = every_batches
        # Keras runs batch hooks synchronously (a device sync every step) when a callback
        # overrides one, unless the callback says it is async-safe: true while they do nothing.
        self.async_safe = every_batches == 0
        self.layer_names = list(layer_names) if layer_names else None
        self.saved: list[Path] = []
        self._epoch = 0  # 1-based epoch in progress

    def get_config(self) -> dict:
        return {"directory": str(self.directory), "every_epochs": self.every_epochs,
                "every_batches": self.every_batches, "layer_names": self.layer_names}

    def kernels(self) -> dict[str, np.ndarray]:
        kernels = conv_kernels(self.model)
        if self.layer_names:
            missing = [name for name in self.layer_names if name not in kernels]
            if missing:
                raise ValueError(f"Invalid value for `layer_names`: {missing}. Expected Conv2D "
                                 f"layer paths of this model: {', '.join(kernels)}.")
            kernels = {name: kernels[name] for name in self.layer_names}
        return kernels

    def save(self, label: str) -> Path:
        """Write the current kernels, and their layers' biases under "<layer path>/bias", to
        `<directory>/<label>.npz` atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        kernels = self.kernels()
        biases = {f"{path}{runs.BIAS_SUFFIX}": bias
                  for path, bias in conv_biases(self.model).items() if path in kernels}
        path = atomic.write_npz_atomic(self.directory / runs.snapshot_name(label),
                                     {**kernels, **biases})
        self.saved.append(path)
        return path

    def on_train_begin(self, logs=None):
        if not (self.directory / runs.snapshot_name(runs.INITIAL)).exists():
            self.save(runs.INITIAL)  # a resumed run keeps its start

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.every_batches and self._epoch == 1 and (batch + 1) % self.every_batches == 0:
            self.save(runs.batch_label(self._epoch, batch + 1))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs == 0:
            self.save(runs.epoch_label(epoch + 1))

    def on_train_end(self, logs=None):
        self.save(runs.FINAL)


@keras.saving.register_keras_serializable(package="kexp")
class EpochLog(SerializableCallback):
    """Append one CSV row per finished epoch (epoch, seconds, then Keras' metrics), so the
    history of an interrupted or crashed run is kept up to its last epoch."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self._epoch_started = 0.0

    def get_config(self) -> dict:
        return {"path": str(self.path)}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - self._epoch_started, 4)}
        row.update({key: float(value) for key, value in sorted((logs or {}).items())})
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with atomic.reporting_disk_full(self.path), \
                open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())


CHECKPOINT_SUFFIXES = (".npz", ".keras")  # .keras: checkpoints of runs from kexp <= 0.1


def training_state(model: keras.Model) -> dict[str, np.ndarray]:
    """Every variable a resumed `fit` needs to continue bit for bit: the model's (weights and the
    dropout layers' random-seed states, which `model.save` does not keep) and the optimizer's
    (step counter, which also drives the learning-rate schedule, and Adam's moments)."""
    state = {}
    for group, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        for index, variable in enumerate(variables):
            state[f"{group}_{index:04d}"] = keras.ops.convert_to_numpy(variable)
    return state


def restore_training_state(model: keras.Model, path: str | os.PathLike) -> None:
    """Load a `training_state` npz into `model`, which must be built from the same config (the
    same architecture and optimizer); a mismatch is refused before anything is assigned."""
    model.optimizer.build(model.trainable_variables)
    groups = (("model", model.variables), ("optimizer", model.optimizer.variables))
    archive = files.read_npz(path, runs.RunError)  # a damaged file: RunError naming it
    expected = {f"{group}_{index:04d}": (tuple(variable.shape), np.dtype(variable.dtype))
                for group, variables in groups for index, variable in enumerate(variables)}
    found = {name: (array.shape, array.dtype) for name, array in archive.items()}
    if found != expected:
        raise runs.RunError(
            f"Cannot resume from '{path}': its {len(found)} arrays do not match the "
            f"{len(expected)} variables of the model built from config.json (names, shapes "
            "and dtypes). Expected a checkpoint written by this run.")
    for group, variables in groups:
        for index, variable in enumerate(variables):
            variable.assign(archive[f"{group}_{index:04d}"])


@keras.saving.register_keras_serializable(package="kexp")
class EpochCheckpoint(SerializableCallback):
    """Save the training state (`training_state`) after every epoch, atomically, as
    `<directory>/epoch_NNN.npz`, keeping only the newest, so an interrupted or killed run can be
    resumed from its last completed epoch exactly as if it had not stopped. The epoch is in the
    file name, so there is no moment where the file and a separate record disagree. (Keras'
    BackupAndRestore deletes its folder, its saves are not atomic, and `model.save` drops the
    dropout seed states; see KERAS_FACTS.md.)

    The state is copied in the training thread (a few ms) and written, fsynced and renamed by a
    background thread while the next epoch trains (`make bench` measured the foreground cost:
    about a third of writing in place). One write is in flight at most: the next epoch's waits
    for it. `wait()` (called by `on_train_end`, and by kexp on an interruption, where Keras skips
    `on_train_end`) finishes the write and raises its error, if it had one."""

    def __init__(self, directory: str | os.PathLike):
        super().__init__()
        self.directory = Path(directory)
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None

    def get_config(self) -> dict:
        return {"directory": str(self.directory)}

    def on_epoch_end(self, epoch, logs=None):
        self.wait()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{runs.epoch_label(epoch + 1)}.npz"
        self._writer = threading.Thread(target=self._write, args=(path, training_state(self.model)),
                                        name="kexp-checkpoint", daemon=True)
        self._writer.start()

    def on_train_end(self, logs=None):
        self.wait()

    def wait(self) -> None:
        """Block until the checkpoint being written is on disk; raise the error it failed with."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_error is not None:
            error, self._write_error = self._write_error, None
            raise error

    def _write(self, path: Path, state: dict[str, np.ndarray]) -> None:
        try:
            atomic.write_npz_atomic(path, state)
            for older in self.checkpoints(self.directory):
                if older != path:
                    older.unlink()
        except BaseException as error:  # raised in the training thread by wait()
            self._write_error = error

    @staticmethod
    def checkpoints(directory: str | os.PathLike) -> list[Path]:
        """Checkpoint files in `directory` (epoch_NNN.npz), oldest epoch first; other names are
        not checkpoints."""
        def is_checkpoint(path: Path) -> bool:
            match = runs.SNAPSHOT_ORDER.match(path.stem)
            return path.suffix in CHECKPOINT_SUFFIXES and bool(match and match.group(2)
                                                               and not match.group(3))

        return sorted(filter(is_checkpoint, Path(directory).glob(f"{runs.EPOCH_PREFIX}*")),
                      key=lambda path: runs.label_epoch(path.stem))

    @staticmethod
    def latest(directory: str | os.PathLike) -> tuple[int, Path] | None:
        """(completed epochs, path) of the newest checkpoint in `directory`, or None."""
        found = EpochCheckpoint.checkpoints(directory)
        if not found:
            return None
        return runs.label_epoch(found[-1].stem), found[-1]


def tensorboard(log_dir: str | os.PathLike) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard callback with weight histograms every epoch (kexp's own figures draw the
    kernels: TensorBoard's write_images renders only conv1 and clips negatives)."""
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=1, write_images=True,
                                       update_freq="epoch")


class TrainingDiverged(runs.RunError):
    """The loss or a weight stopped being a finite number; the run cannot recover from it."""


@keras.saving.register_keras_serializable(package="kexp")
class StopOnNonFinite(SerializableCallback):
    """Fail the run when the loss or any weight is NaN or infinite: at the start (an
    initializer whose numbers overflow float32) and after every epoch. Keras' TerminateOnNaN
    only stops quietly on a NaN loss, which would leave a run marked finished with useless
    filters; checking per epoch also keeps Keras' batch hooks asynchronous."""

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
        for variable in self.model.trainable_variables:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
                raise TrainingDiverged(f"The weights of '{variable.path}' are not finite "
                                       f"{when}. Expected finite weights: lower "
                                       "--learning-rate or use an initializer with a smaller "
                                       "scale.")
