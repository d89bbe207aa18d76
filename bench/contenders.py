"""The speed repeats: each contender trains the same short fit, and the contenders alternate.

- kexp: `kexp.training.trainer.train` (run folder, kernel snapshots, history row and checkpoint
  every epoch);
- plain: `model.fit` on kexp's own input pipelines (`kexp.digits.inputs.input_pipelines`), same
  config, model, schedule, seed and validation, no callbacks: the baseline kexp's overhead is
  measured on;
- checkpoint_options: the plain fit plus bench/checkpoint_options.py's callback, placed after the
  epoch timer so the epochs it reports are plain ones;
- torch: bench/torch_convnet.py in its own venv on the same arrays, against a plain fit without
  augmentation (the PyTorch loop does not augment).
Each returns the seconds of its measured epochs (all but the first, which traces) and what else
it measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from kexp.digits.inputs import input_pipelines, prepare_data
from kexp.storage import runs
from kexp.training.trainer import build_configured_model, train
from kexp.views import force_figures

from checkpoint_options import OPTIONS, CheckpointOptions
from clocks import CallbackClock, EpochTimer
from common import (BENCH_DIR, CONTENDER_TEST_SAMPLES, DEFAULT_MODEL, EPOCHS_PER_FIT,
                    TORCH_PEER_MODEL, bench_config, log)

TORCH_PYTHON = BENCH_DIR / ".venv-torch" / "bin" / "python"
TORCH_SCRIPT = BENCH_DIR / "torch_convnet.py"
TORCH_SETUP = "make torch-peer"
MEASURED_EPOCHS = list(range(1, EPOCHS_PER_FIT))  # 0-based; epoch 0 traces the graphs


def plan(skip_torch: bool) -> tuple[list[tuple[str, str]], str | None]:
    """The (contender, model) pairs of every repeat, and why the PyTorch peer is left out."""
    pairs = [("kexp", DEFAULT_MODEL), ("plain", DEFAULT_MODEL),
             ("checkpoint_options", DEFAULT_MODEL), ("kexp", TORCH_PEER_MODEL)]
    if skip_torch:
        return pairs, "skipped (--skip-torch)"
    if not TORCH_PYTHON.exists():
        return pairs, f"skipped: no PyTorch venv at bench/.venv-torch (create it: {TORCH_SETUP})"
    return pairs + [("plain_unaugmented", TORCH_PEER_MODEL), ("torch", TORCH_PEER_MODEL)], None


def forces_seconds(run_dir: Path) -> list[float]:
    """Seconds the run's forces took inside each measured epoch (views/forces.npz keeps each
    moment's): the moment after completed epoch e is computed at the end of epoch e, inside
    what the epoch timer measures; 0 for an epoch without one."""
    found = force_figures.read_forces_file(run_dir / runs.VIEWS_DIR / runs.FORCES_FILE)
    by_epoch = dict(zip(found["epochs"].tolist(), found["seconds"].tolist()))
    return [by_epoch.get(epoch + 1, 0.0) for epoch in MEASURED_EPOCHS]


class Contenders:
    """One method per contender; each trains once on the same prepared digits."""

    def __init__(self, train_samples: int, work_dir: Path):
        self.work_dir = work_dir
        self.config = bench_config(train_samples=train_samples, epochs=EPOCHS_PER_FIT,
                                   test_samples=CONTENDER_TEST_SAMPLES,
                                   runs_dir=str(work_dir / "runs"))
        self.prepared, self.data_summary = prepare_data(self.config)
        self.last_run_dir: Path | None = None

    def kexp(self, model_name: str) -> dict:
        timer, clock = EpochTimer(), CallbackClock()
        with clock.installed(), contextlib.redirect_stdout(sys.stderr):  # stdout: the table
            self.last_run_dir = train(dataclasses.replace(self.config, model=model_name),
                                      extra_callbacks=[timer], verbose=0)
        return {"epoch_seconds": timer.seconds[1:],
                "callback_seconds": clock.per_epoch(MEASURED_EPOCHS),
                "callback_breakdown": clock.by_callback(MEASURED_EPOCHS),
                "forces_seconds": forces_seconds(self.last_run_dir)}

    def _plain_fit(self, config, extra_callbacks=()) -> list[float]:
        """`model.fit` of `config` exactly as kexp feeds it, without kexp's callbacks."""
        keras.utils.set_random_seed(config.seed)
        pipelines = input_pipelines(config, self.prepared)
        model = build_configured_model(config.validate(), self.prepared)
        timer = EpochTimer()
        model.fit(pipelines.train_batches, epochs=config.epochs,
                  steps_per_epoch=pipelines.steps_per_epoch,
                  validation_data=pipelines.validation_batches,
                  callbacks=[timer, *extra_callbacks], verbose=0, shuffle=False)
        return timer.seconds[1:]

    def plain(self, model_name: str) -> dict:
        return {"epoch_seconds": self._plain_fit(
            dataclasses.replace(self.config, model=model_name))}

    def plain_unaugmented(self, model_name: str) -> dict:
        return {"epoch_seconds": self._plain_fit(
            dataclasses.replace(self.config, model=model_name, augment=False))}

    def checkpoint_options(self, model_name: str) -> dict:
        options = CheckpointOptions(self.work_dir / "checkpoint-options")
        seconds = self._plain_fit(dataclasses.replace(self.config, model=model_name), [options])
        return {"epoch_seconds": seconds,
                "option_seconds": {name: [options.seconds[name][epoch]
                                          for epoch in MEASURED_EPOCHS] for name in OPTIONS},
                "background_write_seconds": options.previous.write_seconds[1:],
                "bytes": options.bytes_written()}

    def torch(self, model_name: str) -> dict:
        arrays = self.work_dir / "torch_data.npz"  # validation digits stand in for its test pass
        np.savez(arrays, x_train=self.prepared.x_train, y_train=self.prepared.y_train,
                 x_test=self.prepared.x_validation, y_test=self.prepared.y_validation)
        result = subprocess.run(
            [str(TORCH_PYTHON), str(TORCH_SCRIPT), str(arrays), str(EPOCHS_PER_FIT),
             str(self.config.batch_size), str(self.config.seed)],
            capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"PyTorch contender failed:\n{result.stderr[-3000:]}")
        info = json.loads(result.stdout.strip().splitlines()[-1])
        return {"epoch_seconds": info.pop("epoch_seconds")[1:], "info": info}


def run_repeats(contenders: Contenders, pairs: list[tuple[str, str]], repeats: int,
                between_repeats) -> dict[str, list[dict]]:
    """Every contender once per repeat, the order rotating from repeat to repeat; calls
    `between_repeats()` after each. Returns each contender's results by repeat."""
    records: dict[str, list[dict]] = {f"{who}/{model}": [] for who, model in pairs}
    for repeat in range(repeats):
        shift = repeat % len(pairs)
        for who, model in pairs[shift:] + pairs[:shift]:
            log(f"repeat {repeat + 1}/{repeats}: {who} {model}")
            records[f"{who}/{model}"].append(getattr(contenders, who)(model))
        between_repeats()
    return records
