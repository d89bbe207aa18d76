"""A finished run's optimal inputs, computed on a thread while its other figures are drawn.

Why: after a short training the learner waits for two things, the optimal inputs (a gradient
ascent in TensorFlow, about a second) and the figures (matplotlib, about a second and a half),
and only one figure needs the optimal inputs. TensorFlow's kernels run without Python's global
lock, so on two cores the ascent on this thread and the drawing on the main thread overlap
instead of queueing: `make train EPOCHS=1` then spends less time after its training than in it.

The main thread keeps the signals (Python delivers them only there): a stop signal while it
draws or waits ends the block, which sets the ascent's stop flag and waits for the thread to
leave at its next step, so nothing is written after the run records how it ended.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kexp import shell_commands
from kexp.digits import data
from kexp.probes import keras_views
from kexp.storage import atomic


class OptimalInputsThread:
    """`with OptimalInputsThread(run_dir, model, seed) as optimal:` starts
    keras_views.write_optimal_inputs on a thread; `optimal.finish()` waits for it and gives the
    status.json entries (its seconds, or its error, warned about with the command that computes
    them again); a full disk is raised there, as the run's failure. Leaving the block early (an
    exception, a stop signal) stops the ascent and waits for the thread."""

    def __init__(self, run_dir: Path, model, seed: int):
        self.run_dir = Path(run_dir)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._seconds: float | None = None
        self._metrics: dict | None = None
        self._thread = threading.Thread(target=self._compute, args=(model, seed),
                                        name="kexp-optimal-inputs", daemon=True)

    def _compute(self, model, seed: int) -> None:
        started = time.perf_counter()
        try:
            keras_views.write_optimal_inputs(self.run_dir, model, seed, stop=self._stop)
        except BaseException as error:  # handed to the main thread by finish()
            self._error = error
        self._seconds = round(time.perf_counter() - started, 2)

    def __enter__(self) -> OptimalInputsThread:
        self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self._stop.set()
        self._thread.join()

    def finish(self) -> dict:
        """Wait for the optimal inputs; the status.json entries they give (the same on every
        call, warned about once). Raises atomic.DiskFull when the disk could not hold them."""
        self._thread.join()
        if self._metrics is None:
            if isinstance(self._error, atomic.DiskFull):
                raise self._error
            self._metrics = {"optimal_inputs_seconds": self._seconds}
            if self._error is not None:  # `kexp explain` computes them again; the run stands
                data.warn(f"optimal inputs were not computed ({self._error}); run: "
                          f"{shell_commands.explain_command(self.run_dir)}")
                self._metrics["optimal_inputs_error"] = str(self._error)
        return self._metrics
