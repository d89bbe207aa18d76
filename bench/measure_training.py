"""`python -m kexp train` as a user runs it: wall time, test accuracy, peak memory, and what
`--deterministic` costs; and, with a full MNIST at hand, the DATA=path training."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from kexp.storage import runs
from kexp.views import force_figures, run_page

from common import REPO_ROOT, log, spread
from measure_startup import kexp_command

DETERMINISM_PAIRS = 2  # default and --deterministic trainings, alternating
FULL_MNIST_CANDIDATES = (Path.home() / ".keras" / "datasets" / "mnist.npz",
                         REPO_ROOT / "data" / "mnist.npz")
# Linux carries a forked child's pre-exec peak RSS (this process, TensorFlow loaded) into its
# ru_maxrss, so the training is started from a small Python that reports its own child's.
PEAK_RSS_WRAPPER = """import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)"""


def cli_training(runs_dir: Path, *extra: str, page_cost: bool = True) -> dict:
    """`python -m kexp train` with its defaults (plus `extra`): wall time, accuracy, steady epoch
    seconds and the training process's peak RSS; with `page_cost`, the run page written again
    and timed (run_page_cost)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_WRAPPER,
                             *kexp_command("train", "--runs-dir", str(runs_dir), *extra)],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"kexp train {' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    run_dir = runs.list_runs(runs_dir)[-1]
    recorded = runs.read_data_record(run_dir)
    history = runs.read_history(run_dir)
    return {"wall_seconds": wall, "max_rss_mb": int(result.stdout.split()[-1]) / 1024,
            "forces": forces_cost(run_dir),
            "run_page": run_page_cost(run_dir) if page_cost else None,
            "test_accuracy": runs.read_status(run_dir)["test_accuracy"], "epochs": len(history),
            "steady_epoch_seconds": (spread([row["seconds"] for row in history[1:]])
                                     if len(history) > 1 else None),  # after the warm-up
            "data": recorded["description"],
            "train_samples": recorded["used_train_samples"], "run_dir": str(run_dir)}


def forces_cost(run_dir: Path) -> dict:
    """What recording the forces cost a run: the seconds kexp.training.forces measured inside its
    callback at each moment (the first includes tracing), against the seconds of the run's
    training epochs (history.csv; the forces are computed outside them)."""
    with np.load(run_dir / runs.VIEWS_DIR / runs.FORCES_FILE) as forces:
        seconds = forces[force_figures.SECONDS_KEY]
    training = sum(row["seconds"] for row in runs.read_history(run_dir))
    return {"seconds": float(seconds.sum()), "moments": len(seconds),
            "training_seconds": training, "share": float(seconds.sum()) / training}


PAGE_CALLS = 3
QUICK_LOOK_RUNS = 3
# What status.json times after the training of a run ("seconds": fit, test and model saved):
# the optimal inputs and the figures, found and drawn side by side ("views_seconds", their wall
# time together), then the run page ("page_seconds", as the training wrote it: with the
# snapshots and layers its figures replayed, and its curves drawn beside the ascent); and the
# views each alone (the overlap makes those two add up to more).
AFTER_TRAINING_KEYS = ("views_seconds", "page_seconds")
ALONE_KEYS = ("optimal_inputs_seconds", "figures_seconds")


def quick_look(runs_dir: Path) -> dict:
    """`make train EPOCHS=1`, the README's quick look, which should spend less time after its
    training than in it: per run, the seconds status.json gives the training and the work
    after it (the optimal inputs and the figures side by side, and each alone; the run page),
    and the ratio after / in training with the page and without."""
    rounds = []
    for _ in range(QUICK_LOOK_RUNS):
        run = cli_training(runs_dir, "--epochs", "1", page_cost=False)  # status.json times it
        status = runs.read_status(Path(run["run_dir"]))
        after = {key: status[key] for key in AFTER_TRAINING_KEYS}
        rounds.append({"training_seconds": status["seconds"], "after_training": after,
                       "alone": {key: status[key] for key in ALONE_KEYS},
                       "wall_seconds": run["wall_seconds"]})
    return {"rounds": rounds,
            "after_over_training": spread([sum(round_["after_training"].values())
                                           / round_["training_seconds"] for round_ in rounds]),
            "views_over_training": spread([
                round_["after_training"]["views_seconds"] / round_["training_seconds"]
                for round_ in rounds])}


def run_page_cost(run_dir: Path) -> dict:
    """The run page of a finished run: seconds to write it again from the run folder (what the
    end of a training and `kexp visualize` do), and its size, pictures included."""
    seconds = []
    for _ in range(PAGE_CALLS):
        started = time.perf_counter()
        page = run_page.write_run_page(run_dir)
        seconds.append(time.perf_counter() - started)
    return {"seconds": spread(seconds), "bytes": page.stat().st_size}


def default_and_deterministic(runs_dir: Path) -> dict:
    """The default training alternating with `--deterministic`, and the cost of the latter."""
    trainings = {"default": [], "deterministic": []}
    for _ in range(DETERMINISM_PAIRS):
        trainings["default"].append(cli_training(runs_dir))
        trainings["deterministic"].append(cli_training(runs_dir, "--deterministic"))
    pooled = {kind: [seconds for run in kind_runs
                     for seconds in run["steady_epoch_seconds"]["values"]]
              for kind, kind_runs in trainings.items()}
    return {"default_train": trainings["default"][0],
            "deterministic_cost": {
                "ratio_of_median_epochs": statistics.median(pooled["deterministic"])
                / statistics.median(pooled["default"]),
                "wall_seconds": {kind: spread([run["wall_seconds"] for run in kind_runs])
                                 for kind, kind_runs in trainings.items()},
                "test_accuracy": {kind: [run["test_accuracy"] for run in kind_runs]
                                  for kind, kind_runs in trainings.items()},
                "max_rss_mb": spread([run["max_rss_mb"] for kind_runs in trainings.values()
                                      for run in kind_runs]),
                "trainings": trainings}}


def full_mnist(runs_dir: Path, data: str | None) -> dict:
    """The default training on a full MNIST (`data`, or the first candidate found)."""
    candidates = [Path(data)] if data else list(FULL_MNIST_CANDIDATES)
    found = next((path for path in candidates if path.exists()), None)
    if found is None:
        return {"skipped": "no full mnist.npz found (looked in "
                           + ", ".join(map(str, candidates)) + ")"}
    log(f"DATA={found} training")
    return cli_training(runs_dir, "--data", str(found))
