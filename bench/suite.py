"""Every measurement of `make bench`, in order, collected into results.json's dictionary."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

import contenders
import measure_speed
import measure_startup
import measure_training
import time_to_accuracy
from common import DEFAULT_MODEL, EPOCHS_PER_FIT, SEED, log


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def settings(args, bench: contenders.Contenders) -> dict:
    prepared = bench.prepared
    return {"repeats": args.repeats, "train_digits": len(prepared.x_train),
            "validation_digits": len(prepared.x_validation),
            "epoch_digits": len(prepared.x_train) + len(prepared.x_validation),
            "batch_size": bench.config.batch_size, "epochs_per_fit": EPOCHS_PER_FIT,
            "measured_epochs_per_fit": EPOCHS_PER_FIT - 1, "seed": SEED,
            "default_model": DEFAULT_MODEL, "sections": list(args.sections),
            "tta_seeds": list(args.tta_seeds), "data": bench.data_summary["description"]}


def speed(args, bench: contenders.Contenders) -> dict:
    """The alternating repeats and what they show (rows 1-4)."""
    pairs, torch_note = contenders.plan(args.skip_torch)
    if torch_note:
        log(f"PyTorch peer {torch_note}")
    peaks: list[float] = []

    def matmul_peak() -> None:
        peaks.append(measure_speed.matmul_gflops())
        log(f"matmul {peaks[-1]:.1f} GFLOP/s")

    records = contenders.run_repeats(bench, pairs, args.repeats, matmul_peak)
    results = measure_speed.summarise(records, len(bench.prepared.x_train), peaks)
    if torch_note:
        results["torch"] = {"skipped": torch_note}
    return results


def measure(args) -> dict:
    """All sections named in `args.sections`, in a scratch folder removed afterwards."""
    work_dir = Path(tempfile.mkdtemp(prefix="kexp-bench-"))
    started = time.perf_counter()
    try:
        bench = contenders.Contenders(args.train_samples, work_dir)
        results = {"machine": machine(), "settings": settings(args, bench)}
        if "speed" in args.sections:
            results.update(speed(args, bench))
        if "startup" in args.sections:
            if bench.last_run_dir is None:
                bench.kexp(DEFAULT_MODEL)  # the figures need a finished run
            log("start-up and plotting")
            results["startup_and_plotting"] = measure_startup.startup_and_plotting(
                bench.last_run_dir)
        if "training" in args.sections:
            log("python -m kexp train, then with --deterministic")
            results.update(measure_training.default_and_deterministic(work_dir / "cli-runs"))
            log("make train EPOCHS=1: the work after training against the training")
            results["quick_look"] = measure_training.quick_look(work_dir / "cli-runs")
            results["full_mnist_train"] = measure_training.full_mnist(work_dir / "cli-runs",
                                                                      args.data)
        if "accuracy" in args.sections:
            results["time_to_accuracy"] = time_to_accuracy.time_to_accuracy(
                args.tta_seeds, work_dir / "tta-runs")
        results["bench_seconds"] = time.perf_counter() - started
        return results
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
