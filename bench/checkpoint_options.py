"""Four ways to write the per-epoch resume checkpoint, timed in the foreground of a callback
(issue 12).

- keras_file: the whole model as a `.keras` zip, saved to a temporary name and renamed, as kexp's
  first checkpoint did (`model.save`; no fsync);
- npz: `kexp.training.checkpoint.training_state` (model and optimizer variables, read one by
  one) written atomically with `kexp.storage.atomic.write_npz_atomic` (fsync, rename);
- npz_background: the same arrays copied one by one in the foreground and written by a background
  thread (kexp's checkpoint of the previous release);
- npz_compiled_read_background: kexp's `EpochCheckpoint` itself: every variable read in one
  compiled call in the foreground, turned into numpy and written by kexp's background writer.
The foreground pays the read (and a wait, if the previous write has not finished).
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import keras

from kexp.storage import atomic, background_writes
from kexp.training import checkpoint

SYNCHRONOUS = ("keras_file", "npz")
PREVIOUS_BACKGROUND = "npz_background"
KEXP_CHECKPOINT = "npz_compiled_read_background"
OPTIONS = (*SYNCHRONOUS, PREVIOUS_BACKGROUND, KEXP_CHECKPOINT)


def save_keras_file(model: keras.Model, path: Path) -> None:
    temporary = atomic.temporary_sibling(path)
    model.save(temporary)
    os.replace(temporary, path)


def save_npz(model: keras.Model, path: Path) -> None:
    atomic.write_npz_atomic(path, checkpoint.training_state(model))


class PreviousBackgroundWriter:
    """The previous release's checkpoint: wait for the last write, copy every variable one by
    one, hand the npz to a background thread. Records how long each write took there."""

    def __init__(self):
        self.write_seconds: list[float] = []
        self.writer = background_writes.OrderedWriter()

    def __call__(self, model: keras.Model, path: Path) -> None:
        self.writer.wait()
        self.writer.submit(functools.partial(self._write, path, checkpoint.training_state(model)))

    def _write(self, path: Path, state: dict) -> None:
        started = time.perf_counter()
        atomic.write_npz_atomic(path, state)
        self.write_seconds.append(time.perf_counter() - started)


class CheckpointOptions(keras.callbacks.Callback):
    """After every epoch, writes the checkpoint each of the four ways into `directory` and
    records the seconds each took in the foreground. The two synchronous writes swap order from
    epoch to epoch (a previous write can slow the next); the background ones start last, so
    their threads overlap the next epoch's training, as they would in a run."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)
        self.previous = PreviousBackgroundWriter()
        self.kexp_checkpoint = checkpoint.EpochCheckpoint(self.directory / KEXP_CHECKPOINT)
        self.writers = {"keras_file": (save_keras_file, "checkpoint.keras"),
                        "npz": (save_npz, "checkpoint.npz"),
                        PREVIOUS_BACKGROUND: (self.previous, "background.npz")}
        self.seconds: dict[str, dict[int, float]] = {name: {} for name in OPTIONS}

    def set_model(self, model):
        super().set_model(model)
        self.kexp_checkpoint.set_model(model)

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        synchronous = SYNCHRONOUS if epoch % 2 == 0 else SYNCHRONOUS[::-1]
        for name in (*synchronous, PREVIOUS_BACKGROUND):
            write, file_name = self.writers[name]
            started = time.perf_counter()
            write(self.model, self.directory / file_name)
            self.seconds[name][epoch] = time.perf_counter() - started
        started = time.perf_counter()
        self.kexp_checkpoint.on_epoch_end(epoch, logs)
        self.seconds[KEXP_CHECKPOINT][epoch] = time.perf_counter() - started

    def on_train_end(self, logs=None):
        self.previous.writer.wait()
        self.kexp_checkpoint.on_train_end(logs)

    def bytes_written(self) -> dict[str, int]:
        sizes = {name: (self.directory / file_name).stat().st_size
                 for name, (_, file_name) in self.writers.items()}
        (latest,) = checkpoint.EpochCheckpoint.checkpoints(self.kexp_checkpoint.directory)
        return {**sizes, KEXP_CHECKPOINT: latest.stat().st_size}
