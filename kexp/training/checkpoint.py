"""The resume checkpoint: every variable a resumed `fit` needs, saved after each epoch.

`EpochCheckpoint` keeps `<run>/checkpoint/epoch_NNN.npz` of the last completed epoch, so a run
that was interrupted, killed or crashed continues from it exactly as if it had not stopped
(Keras' BackupAndRestore deletes its folder, its saves are not atomic, and `model.save` drops the
dropout seed states). `restore_training_state` loads one back.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kexp.storage import atomic, background_writes, files, runs
from kexp.training.callbacks import SerializableCallback, VariableReader

CHECKPOINT_SUFFIXES = (".npz", ".keras")  # .keras: checkpoints of runs from kexp <= 0.1


def state_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """Every variable a resumed `fit` needs to continue bit for bit, by its name in the
    checkpoint: the model's (weights and the dropout layers' random-seed states, which
    `model.save` does not keep) and the optimizer's (step counter, which also drives the
    learning-rate schedule, and Adam's moments)."""
    return {f"{group}_{index:04d}": variable
            for group, variables in (("model", model.variables),
                                     ("optimizer", model.optimizer.variables))
            for index, variable in enumerate(variables)}


def training_state(model: keras.Model) -> dict[str, np.ndarray]:
    """`state_variables` as numpy copies, read one by one."""
    return {name: keras.ops.convert_to_numpy(variable)
            for name, variable in state_variables(model).items()}


def restore_training_state(model: keras.Model, path: str | os.PathLike) -> None:
    """Load a training-state npz into `model`, which must be built from the same config (the
    same architecture and optimizer); a mismatch is refused before anything is assigned."""
    model.optimizer.build(model.trainable_variables)
    variables = state_variables(model)
    archive = files.read_npz(path, runs.RunError)  # a damaged file: RunError naming it
    expected = {name: (tuple(variable.shape), np.dtype(variable.dtype))
                for name, variable in variables.items()}
    found = {name: (array.shape, array.dtype) for name, array in archive.items()}
    if found != expected:
        raise runs.RunError(
            f"Cannot resume from '{path}': its {len(found)} arrays do not match the "
            f"{len(expected)} variables of the model built from config.json (names, shapes "
            "and dtypes). Expected a checkpoint written by this run.")
    for name, variable in variables.items():
        variable.assign(archive[name])


@keras.saving.register_keras_serializable(package="kexp")
class EpochCheckpoint(SerializableCallback):
    """Save the training state (`state_variables`) after every epoch, atomically, as
    `<directory>/epoch_NNN.npz`, keeping only the newest. The epoch is in the file name, so
    there is no moment where the file and a separate record disagree.

    The training thread only reads the variables, in one compiled call (`VariableReader`,
    about 0.3 ms for convnet_dense and Adam); `writer`, a background thread, turns them into
    numpy, writes, fsyncs and renames the file while the next epoch trains (`make bench`
    measures each way of checkpointing). `wait()` (called by `on_train_end`, and by kexp on an
    interruption, where Keras skips `on_train_end`) lands what was handed over and raises the
    error a write failed with, if any. A SIGKILL a few milliseconds after an epoch can lose
    that epoch's checkpoint: the run then resumes from the one before."""

    def __init__(self, directory: str | os.PathLike,
                 writer: background_writes.OrderedWriter | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.writer = writer or background_writes.OrderedWriter()
        self._read = VariableReader()

    def get_config(self) -> dict:
        return {"directory": str(self.directory)}

    def on_epoch_end(self, epoch, logs=None):
        path = self.directory / f"{runs.epoch_label(epoch + 1)}.npz"
        state = self._read.by_name(state_variables(self.model))
        self.writer.submit(functools.partial(self._write, path, state))

    def on_train_end(self, logs=None):
        self.wait()

    def wait(self) -> None:
        """Block until the checkpoints handed over are on disk; raise the error one failed with."""
        self.writer.wait()

    def _write(self, path: Path, state: dict[str, tf.Tensor]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic.write_npz_atomic(path, {name: np.asarray(tensor) for name, tensor in state.items()})
        for older in self.checkpoints(self.directory):
            if older != path:
                older.unlink()

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
