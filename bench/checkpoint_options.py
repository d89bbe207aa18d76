"""Three ways to write the per-epoch resume checkpoint, timed inside a callback (issue 12).

- keras_file: the whole model as a `.keras` zip, saved to a temporary name and renamed, as kexp's
  checkpoint did before (`model.save`; no fsync);
- npz: `kexp.callbacks.training_state` (model and optimizer variables) written atomically with
  `kexp.atomic.write_npz_atomic` (fsync, rename): what kexp's EpochCheckpoint writes today;
- npz_background: the same arrays copied in the foreground and written by a background thread;
  the foreground pays the copy (and a wait, if the previous write has not finished).
The last exists only here, as a measurement; kexp does not write checkpoints this way.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import keras

from kexp import atomic, callbacks, runs

SYNCHRONOUS = ("keras_file", "npz")
BACKGROUND = "npz_background"
OPTIONS = (*SYNCHRONOUS, BACKGROUND)


def save_keras_file(model: keras.Model, path: Path) -> None:
    temporary = atomic.temporary_sibling(path)
    model.save(temporary)
    os.replace(temporary, path)


def save_npz(model: keras.Model, path: Path) -> None:
    atomic.write_npz_atomic(path, callbacks.training_state(model))


class BackgroundNpzWriter:
    """Writes a training-state npz in a thread from arrays copied at call time; one write at a
    time, so a slow disk makes the next call wait rather than pile up copies."""

    def __init__(self):
        self.write_seconds: list[float] = []
        self._thread: threading.Thread | None = None

    def __call__(self, model: keras.Model, path: Path) -> None:
        self.wait()
        state = callbacks.training_state(model)  # fresh numpy copies of every variable
        self._thread = threading.Thread(target=self._write, args=(path, state), daemon=True)
        self._thread.start()

    def _write(self, path: Path, state: dict) -> None:
        started = time.perf_counter()
        atomic.write_npz_atomic(path, state)
        self.write_seconds.append(time.perf_counter() - started)

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class CheckpointOptions(keras.callbacks.Callback):
    """After every epoch, writes the checkpoint each of the three ways into `directory` and
    records the seconds each took in the foreground. The two synchronous writes swap order from
    epoch to epoch (a previous write can slow the next); the background one starts last, so its
    thread overlaps the next epoch's training, as it would in a run, not the other writes."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)
        self.background = BackgroundNpzWriter()
        self.writers = {"keras_file": (save_keras_file, "checkpoint.keras"),
                        "npz": (save_npz, "checkpoint.npz"),
                        BACKGROUND: (self.background, "background.npz")}
        self.seconds: dict[str, dict[int, float]] = {name: {} for name in OPTIONS}

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        synchronous = SYNCHRONOUS if epoch % 2 == 0 else SYNCHRONOUS[::-1]
        for name in (*synchronous, BACKGROUND):
            write, file_name = self.writers[name]
            started = time.perf_counter()
            write(self.model, self.directory / file_name)
            self.seconds[name][epoch] = time.perf_counter() - started

    def on_train_end(self, logs=None):
        self.background.wait()

    def bytes_written(self) -> dict[str, int]:
        return {name: (self.directory / file_name).stat().st_size
                for name, (_, file_name) in self.writers.items()}
