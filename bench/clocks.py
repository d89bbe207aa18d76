"""Clocks inside `fit`: the seconds of every epoch, and the seconds spent inside kexp's own
per-epoch callbacks (the overhead kexp adds to a plain `model.fit`)."""

from __future__ import annotations

import contextlib
import time

import keras

from kexp.training import callbacks, checkpoint


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every epoch. Placed after kexp's callbacks, an epoch includes their work;
    a callback placed after this one is not counted."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


# kexp's callbacks that work after every epoch: kernel snapshot, history row, finiteness check,
# checkpoint (each one's on_epoch_begin does nothing but note a time or a number).
KEXP_EPOCH_CALLBACKS = {"snapshot": callbacks.KernelSnapshots, "history": callbacks.EpochLog,
                        "finiteness": callbacks.StopOnNonFinite,
                        "checkpoint": checkpoint.EpochCheckpoint}


class CallbackClock:
    """Seconds inside the `on_epoch_end` of each of kexp's per-epoch callbacks, by epoch, while
    `installed()` wraps those methods (they are restored afterwards)."""

    def __init__(self):
        self.seconds: dict[str, dict[int, float]] = {name: {} for name in KEXP_EPOCH_CALLBACKS}

    def per_epoch(self, epochs: list[int]) -> list[float]:
        """Seconds inside all of kexp's callbacks in each of `epochs` (0-based)."""
        return [sum(by_epoch.get(epoch, 0.0) for by_epoch in self.seconds.values())
                for epoch in epochs]

    def by_callback(self, epochs: list[int]) -> dict[str, float]:
        """Mean seconds per epoch of each callback over `epochs`."""
        return {name: sum(by_epoch.get(epoch, 0.0) for epoch in epochs) / len(epochs)
                for name, by_epoch in self.seconds.items()}

    def _timed(self, name: str, method):
        by_epoch = self.seconds[name]

        def on_epoch_end(callback, epoch, logs=None):
            started = time.perf_counter()
            try:
                return method(callback, epoch, logs)
            finally:
                by_epoch[epoch] = by_epoch.get(epoch, 0.0) + time.perf_counter() - started
        return on_epoch_end

    @contextlib.contextmanager
    def installed(self):
        originals = {name: cls.on_epoch_end for name, cls in KEXP_EPOCH_CALLBACKS.items()}
        for name, cls in KEXP_EPOCH_CALLBACKS.items():
            cls.on_epoch_end = self._timed(name, originals[name])
        try:
            yield self
        finally:
            for name, cls in KEXP_EPOCH_CALLBACKS.items():
                cls.on_epoch_end = originals[name]
