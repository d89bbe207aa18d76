"""make bench-compare: the same 8-training study on kexp's local pool and on a local Ray, in one
run, and what giving each training only its share of the CPUs is worth.

Contenders, alternating within each repeat (this CPU is shared and noisy):
- local:       the local pool, `--jobs 2`, each training 1 TensorFlow thread per pool (kexp now);
- ray:         a local Ray that kexp starts and stops, 1 CPU and 1 thread per training;
- local, TF threads: the local pool as before kexp set threads (TensorFlow sizes its pools to
               the whole machine in each of the two processes).
Ray's overhead per training is (ray wall - Ray's start and stop - local wall) spread over the
trainings that each CPU ran one after the other, as a share of one training's wall time on the
local pool. Ray's start and stop, once per study, are timed apart in each repeat (a user waits
for them: they are in the ray wall).
Usage: .venv/bin/python bench/compare_engines.py [--epochs 5] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kexp.training import tf_startup  # noqa: E402

tf_startup.quiet_logs()

from common import BENCH_DIR, fmt, log, spread  # noqa: E402

from kexp.experiments.compare import command, engines, plan, ray_engine, shipping  # noqa: E402

INITIALIZERS = ["glorot_uniform", "he_normal", "orthogonal", "zeros"]
SEEDS = [0, 1]
JOBS = 2  # the study's default: one training per core here
RESULTS = BENCH_DIR / "compare-engines.json"


def contenders() -> dict:
    return {"local": lambda: engines.LocalEngine(jobs=JOBS, cpus_per_training=1),
            "ray": lambda: ray_engine.RayEngine(cpus_per_training=1),
            "local, TF threads": lambda: _TensorFlowThreads(jobs=JOBS)}


class _TensorFlowThreads(engines.LocalEngine):
    """The local pool without a thread limit: each child keeps TensorFlow's default pools."""

    @property
    def threads(self):
        return None


def ray_start_stop_seconds() -> float:
    started = time.perf_counter()
    with ray_engine.RayEngine(cpus_per_training=1).connected():
        pass
    return time.perf_counter() - started


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's finished children: the local pool's trainings (a Ray
    worker is not a child of the driver, so the ray contender's number means nothing)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_sweep(name: str, make_engine, epochs: int, root: Path) -> dict:
    study = plan.Study(initializers=INITIALIZERS, seeds=SEEDS, epochs=epochs, jobs=JOBS,
                       runs_dir=str(root / name.replace(", ", "-").replace(" ", "-")))
    started, cpu_before = time.perf_counter(), _children_cpu_seconds()
    compare_dir = command.run_study(study, say=lambda line: None, engine=make_engine())
    wall = time.perf_counter() - started
    rows = json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]
    assert all(row["status"] == "finished" for row in rows), rows
    archive_mb = [len(shipping.pack_run(compare_dir / row["run"])) / 2**20 for row in rows]
    results = [json.loads(path.read_text())
               for path in (compare_dir / plan.LOGS_SUBDIR).glob(f"*{plan.RESULT_SUFFIX}")]
    in_task = [result["task_seconds"] - result["seconds"] + result["arrival_seconds"]
               for result in results if "task_seconds" in result]  # the ray contender's
    log(f"{name}: {wall:.1f} s")
    return {"wall": wall, "cpu": _children_cpu_seconds() - cpu_before,
            "training_walls": [row["process_seconds"] for row in rows],
            "archive_mb": archive_mb, "in_task_overhead": in_task,
            "shipping": [result["shipping_seconds"] for result in results
                         if "shipping_seconds" in result],
            "test_accuracy": {f"{r['initializer']} {r['seed']}": r["test_accuracy"] for r in rows}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    measured: dict[str, list[dict]] = {name: [] for name in contenders()}
    start_stop = []
    with tempfile.TemporaryDirectory(prefix="kexp-bench-compare-") as root:
        for repeat in range(args.repeats):
            names = list(contenders())
            names = names[repeat % len(names):] + names[:repeat % len(names)]
            for name in names:
                measured[name].append(one_sweep(name, contenders()[name], args.epochs,
                                                Path(root)))
            start_stop.append(ray_start_stop_seconds())
    walls = {name: spread([run["wall"] for run in runs]) for name, runs in measured.items()}
    cpu = {name: spread([run["cpu"] for run in measured[name]])
           for name in ("local", "local, TF threads")}
    training = spread([wall for run in measured["local"] for wall in run["training_walls"]])
    trainings = len(INITIALIZERS) * len(SEEDS)
    per_training = spread([(ray["wall"] - seconds - local["wall"]) / (trainings / JOBS)
                           for ray, local, seconds in
                           zip(measured["ray"], measured["local"], start_stop)])
    same = all(ray["test_accuracy"] == local["test_accuracy"]
               for ray, local in zip(measured["ray"], measured["local"]))
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{engines.machine_cpus()} CPUs, load {os.getloadavg()[0]:.1f}",
               "epochs": args.epochs, "repeats": args.repeats, "walls": walls,
               "ray_start_stop": spread(start_stop), "cpu_seconds": cpu,
               "training_wall_local": training,
               "ray_overhead_per_training": per_training, "same_accuracies": same,
               "archive_mb": spread([mb for run in measured["ray"] for mb in run["archive_mb"]]),
               "in_task_overhead": spread([s for run in measured["ray"]
                                           for s in run["in_task_overhead"]]),
               "shipping": spread([s for run in measured["ray"] for s in run["shipping"]])}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{trainings} trainings ({len(INITIALIZERS)} initializers x {len(SEEDS)} seeds), "
          f"{args.epochs} epochs each on the 4,000 mnist-5k digits, {JOBS} at a time; "
          f"{results['machine']}; median (min-max) of {args.repeats} repeat(s), s")
    print("\n| measure | result |\n| --- | --- |")
    for name, wall in walls.items():
        print(f"| study wall time, {name} | {fmt(wall, 1)} |")
    print(f"| Ray start + stop, once per study (in the ray wall) | "
          f"{fmt(results['ray_start_stop'], 1)} |")
    print(f"| one training on the local pool (process wall, TF start-up included) | "
          f"{fmt(training, 1)} |")
    print(f"| Ray overhead per training, from the study walls: (ray - start/stop - local) / 4 | "
          f"{fmt(per_training, 2)} s = "
          f"{100 * per_training['median'] / training['median']:.1f} % of one training |")
    print(f"| local pool, TensorFlow's own threads / 1 thread per training: study wall, "
          f"CPU seconds of the trainings | "
          f"{walls['local, TF threads']['median'] / walls['local']['median']:.2f}, "
          f"{cpu['local, TF threads']['median'] / cpu['local']['median']:.2f} "
          f"({fmt(cpu['local, TF threads'], 0)} s vs {fmt(cpu['local'], 0)} s) |")
    print(f"| Ray's work before and after one training's process (task start, packing, fetching "
          f"and landing the run folder), s | {fmt(results['in_task_overhead'], 2)} = "
          f"{100 * results['in_task_overhead']['median'] / training['median']:.1f} % of one "
          f"training; sending checkpoints, while it trains: {fmt(results['shipping'], 2)} |")
    print(f"| run folder shipped back per training, MB | {fmt(results['archive_mb'], 1)} |")
    print(f"| same test accuracies on both engines | {'yes' if same else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
