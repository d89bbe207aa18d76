"""What every part of the bench shares: where things are, the fixed settings, the config every
contender trains with, and the median-with-range summary that every number is reported as."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

from kexp.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "results.json"  # every run's raw numbers (ignored by git)
README_RESULTS_FILE = BENCH_DIR / "results-readme.json"  # the run docs/performance.md quotes
PERFORMANCE_PAGE = REPO_ROOT / "docs" / "performance.md"  # its table sits between bench markers

BENCH_DATA = "mnist-5k"  # the 4,000 offline training digits and 1,000 held-out test digits
SEED = 0
DEFAULT_MODEL = TrainConfig().model  # the model `kexp train` trains when none is named
TORCH_PEER_MODEL = "convnet"  # bench/torch_convnet.py builds this one
REPEATS = 5
TRAIN_SAMPLES = 4000  # all training digits of the offline source
SECTIONS = ("speed", "startup", "training", "accuracy")  # in the order bench/suite.py runs them
EPOCHS_PER_FIT = 6  # the first is tracing and warm-up, the others are measured
CONTENDER_TEST_SAMPLES = 128  # kexp's end-of-run evaluation in the repeats; never timed


def bench_config(**changes) -> TrainConfig:
    """kexp's default recipe on the offline digits, with `changes`: the one config the bench's
    trainings start from, so kexp and the plain fit cannot train different recipes."""
    return dataclasses.replace(TrainConfig(data=BENCH_DATA, seed=SEED), **changes).validate()


def spread(values: list[float]) -> dict:
    """Median and min-max of `values` (the raw values are kept too)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def fmt(summary: dict, digits: int = 2, scale: float = 1.0) -> str:
    """'median (min-max)' of a `spread`, each multiplied by `scale`."""
    return (f"{summary['median'] * scale:.{digits}f} ({summary['min'] * scale:.{digits}f}-"
            f"{summary['max'] * scale:.{digits}f})")


def log(message: str) -> None:
    """Progress on stderr: stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
