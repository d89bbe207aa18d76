"""make bench: how fast kexp is against what a user would otherwise run, measured in one run.

Contenders alternate within each repeat (their order rotates from repeat to repeat) and every
number is reported as the median with its min-max, because this CPU is shared and noisy. Writes
bench/results.json (raw numbers) and prints a Markdown table (pasted into README's Performance
section). Sections:

1. callback overhead: kexp's training path (run folder, kernel snapshots, history and checkpoint
   every epoch) vs a plain `model.fit` of the same model, data, seed and input pipeline;
2. throughput of convnet and mnist_cnn, analytic training FLOPs and the utilisation of a large
   float32 matmul's GFLOP/s measured in the same run;
3. the same convnet as a plain PyTorch loop (bench/.venv-torch, a subprocess on the same arrays);
4. start-up (`python -m kexp --help`) and plotting;
5. time to accuracy of the default `python -m kexp train`, with and without --deterministic;
6. peak RSS of that training.

The repeats train on the 4,000 offline training digits (mnist-5k), with 128 test digits for the
per-epoch validation that kexp's epochs include; the first epoch of every fit (tracing) is not
counted. Usage: .venv/bin/python bench/run.py [--repeats N] [--train-samples N] [--skip-torch]
[--data PATH] [--table-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "results.json"
TORCH_PYTHON = BENCH_DIR / ".venv-torch" / "bin" / "python"
TORCH_SCRIPT = BENCH_DIR / "torch_convnet.py"
TORCH_SETUP = ("python3 -m venv bench/.venv-torch && "
               "bench/.venv-torch/bin/pip install torch==2.13.0 numpy")

REPEATS = 5
TRAIN_SAMPLES = 4000  # all training digits of the offline source
TEST_SAMPLES = 128
EPOCHS_PER_FIT = 4  # the first is tracing and warm-up, the others are measured
SEED = 0
MATMUL_SIZE = 2048
MATMUL_CALLS = 5
HELP_CALLS = 5
GRID_CALLS = 5
VISUALIZE_CALLS = 3
FULL_EPOCH_SAMPLES = 60_000  # full MNIST, for projecting the per-epoch callback cost
DETERMINISM_PAIRS = 2  # default and --deterministic trainings, alternating
FULL_MNIST_CANDIDATES = (Path.home() / ".keras" / "datasets" / "mnist.npz",
                         REPO_ROOT / "data" / "mnist.npz")

PEAK_RSS_WRAPPER = """import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)"""

sys.path.insert(0, str(REPO_ROOT))


def spread(values: list[float]) -> dict:
    """Median and min-max of `values` (the raw values are kept too)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def fmt(summary: dict, digits: int = 2, scale: float = 1.0) -> str:
    return (f"{summary['median'] * scale:.{digits}f} ({summary['min'] * scale:.{digits}f}-"
            f"{summary['max'] * scale:.{digits}f})")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- FLOPs from layer shapes ------------------------------------------------------------------


def training_flops_per_sample(model) -> dict:
    """Forward FLOPs (2 per multiply-add) of every Conv2D and Dense layer, from its shapes, and
    forward+backward: backward costs one weight gradient per layer plus one input gradient per
    layer after the first (nothing needs the gradient of the input image). Pooling, activations
    and biases are memory-bound and left out."""
    import keras

    forward, backward, layers = 0, 0, {}
    for index, layer in enumerate(layer for layer in model.layers
                                  if isinstance(layer, (keras.layers.Conv2D,
                                                        keras.layers.Dense))):
        kernel_elements = 1
        for size in layer.kernel.shape:
            kernel_elements *= int(size)
        positions = 1
        for size in layer.output.shape[1:-1]:  # output height x width (none for Dense)
            positions *= int(size)
        layer_forward = 2 * kernel_elements * positions
        layers[layer.name] = layer_forward
        forward += layer_forward
        backward += layer_forward * (1 if index == 0 else 2)
    return {"forward": forward, "training": forward + backward, "layers": layers}


# --- contenders -----------------------------------------------------------------------------


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of every epoch, measured last among the callbacks (so it includes them)."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._started)

    return EpochTimer()


class CallbackClock:
    """Seconds spent inside kexp's per-epoch callbacks (snapshot, history row, checkpoint),
    measured by wrapping their methods for the duration of the benchmark."""

    def __init__(self):
        from kexp import callbacks

        self.seconds = {"snapshots": 0.0, "history": 0.0, "checkpoint": 0.0}
        targets = {"snapshots": (callbacks.KernelSnapshots, "save"),
                   "history": (callbacks.EpochLog, "on_epoch_end"),
                   "checkpoint": (callbacks.EpochCheckpoint, "on_epoch_end")}
        for name, (cls, method) in targets.items():
            setattr(cls, method, self._timed(name, getattr(cls, method)))

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
        return wrapper

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)


class Contenders:
    """Each method trains once and returns the seconds of its measured (non-first) epochs."""

    def __init__(self, train_samples: int, work_dir: Path):
        from kexp.config import TrainConfig
        from kexp.training import prepare_data

        self.work_dir = work_dir
        self.clock = CallbackClock()
        self.callback_seconds_per_epoch: list[float] = []
        self.config = TrainConfig(data="mnist-5k", train_samples=train_samples,
                                  test_samples=TEST_SAMPLES, epochs=EPOCHS_PER_FIT, seed=SEED,
                                  runs_dir=str(work_dir / "runs"))
        self.dataset, self.data_summary = prepare_data(self.config)
        self.npz = work_dir / "bench_data.npz"
        import numpy as np

        np.savez(self.npz, x_train=self.dataset.x_train, y_train=self.dataset.y_train,
                 x_test=self.dataset.x_test, y_test=self.dataset.y_test)

    def kexp(self, model_name: str) -> list[float]:
        """kexp.training.train: run folder, snapshots, history and checkpoint every epoch."""
        import dataclasses

        from kexp.training import train

        timer = _epoch_timer()
        self.clock.reset()
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the table
            run_dir = train(dataclasses.replace(self.config, model=model_name),
                            extra_callbacks=[timer], verbose=0)
        self.last_run_dir = run_dir
        self.callback_seconds_per_epoch.append(sum(self.clock.seconds.values())
                                               / EPOCHS_PER_FIT)
        return timer.seconds[1:]

    def _plain_model(self, model_name: str):
        import keras

        from kexp.models import build_model

        keras.utils.set_random_seed(SEED)
        return build_model(model_name, seed=SEED)

    def plain_pipeline(self, model_name: str) -> list[float]:
        """model.fit with kexp's tf.data input pipeline and no callbacks: the overhead baseline."""
        import math

        import tensorflow as tf

        from kexp import data
        from kexp.training import epoch_batches

        model, timer = self._plain_model(model_name), _epoch_timer()
        x_train = data.to_model_inputs(self.dataset.x_train)
        x_test = data.to_model_inputs(self.dataset.x_test)
        batch_size = self.config.batch_size
        model.fit(epoch_batches(x_train, self.dataset.y_train, batch_size, SEED, 0,
                                EPOCHS_PER_FIT),
                  epochs=EPOCHS_PER_FIT, steps_per_epoch=math.ceil(len(x_train) / batch_size),
                  validation_data=tf.data.Dataset.from_tensor_slices(
                      (x_test, self.dataset.y_test)).batch(batch_size).cache(),
                  callbacks=[timer], verbose=0)
        return timer.seconds[1:]

    def plain_arrays(self, model_name: str) -> list[float]:
        """model.fit(x, y, shuffle=True) on numpy arrays: what most Keras scripts do."""
        from kexp import data

        model, timer = self._plain_model(model_name), _epoch_timer()
        model.fit(data.to_model_inputs(self.dataset.x_train), self.dataset.y_train,
                  batch_size=self.config.batch_size, epochs=EPOCHS_PER_FIT, shuffle=True,
                  validation_data=(data.to_model_inputs(self.dataset.x_test),
                                   self.dataset.y_test), callbacks=[timer], verbose=0)
        return timer.seconds[1:]

    def torch(self, model_name: str) -> list[float]:
        """The same convnet as a plain PyTorch loop in its own venv, on the same arrays."""
        assert model_name == "convnet"
        result = subprocess.run(
            [str(TORCH_PYTHON), str(TORCH_SCRIPT), str(self.npz), str(EPOCHS_PER_FIT),
             str(self.config.batch_size), str(SEED)], capture_output=True, text=True,
            timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"PyTorch contender failed:\n{result.stderr[-3000:]}")
        self.torch_info = json.loads(result.stdout.strip().splitlines()[-1])
        return self.torch_info["epoch_seconds"][1:]


def matmul_gflops() -> float:
    """Best-of-calls GFLOP/s of a MATMUL_SIZE^2 float32 TensorFlow matmul: the attainable peak."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((MATMUL_SIZE, MATMUL_SIZE), seed=(1, 2))
    b = tf.random.stateless_uniform((MATMUL_SIZE, MATMUL_SIZE), seed=(3, 4))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(MATMUL_CALLS):
        started = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL_SIZE ** 3 / best / 1e9


# --- 4. start-up and plotting -----------------------------------------------------------------


def kexp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kexp", *args]


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def startup_and_plotting(run_dir: Path) -> dict:
    from kexp import plots, runs

    help_seconds = [wall_seconds(kexp_command("--help")) for _ in range(HELP_CALLS)]
    probe = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom kexp import cli\ntry:\n    cli.main(['--help'])"
         "\nexcept SystemExit:\n    pass\nprint(sorted(m for m in ('tensorflow', 'keras', "
         "'matplotlib') if m in sys.modules))"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    heavy_modules = json.loads(probe.stdout.strip().splitlines()[-1].replace("'", '"'))
    visualize_seconds = [wall_seconds(kexp_command("visualize", run_dir.name, "--runs-dir",
                                                   str(run_dir.parent)))
                         for _ in range(VISUALIZE_CALLS)]
    render_seconds = []
    for _ in range(VISUALIZE_CALLS):
        started = time.perf_counter()
        figures = plots.render_run(run_dir)
        render_seconds.append(time.perf_counter() - started)
    before = runs.load_kernels(run_dir / runs.KERNELS_DIR / "initial.npz")["conv1"]
    after = runs.load_kernels(run_dir / runs.KERNELS_DIR / "final.npz")["conv1"]
    grid_seconds = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(GRID_CALLS):
            started = time.perf_counter()
            plots.plot_filter_grids(before, after, Path(scratch) / "conv1.png")
            grid_seconds.append(time.perf_counter() - started)
    return {"help_seconds": spread(help_seconds), "help_imports": heavy_modules,
            "visualize_command_seconds": spread(visualize_seconds),
            "render_run_seconds": spread(render_seconds), "figures": len(figures),
            "conv1_grid_seconds": spread(grid_seconds)}


# --- 5/6. default training: time to accuracy, peak RSS, determinism -------------------------


def default_training(runs_dir: Path, *extra: str) -> dict:
    """`python -m kexp train` with its defaults (plus `extra`) as a user runs it; wall time,
    accuracy, steady epoch seconds and the child's peak RSS (os.wait4 reports this child only)."""
    from kexp import runs

    started = time.perf_counter()
    # Linux carries a forked child's pre-exec peak RSS (this process, TensorFlow loaded) into
    # its ru_maxrss, so the training is started from a small Python that reports its child's.
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_WRAPPER,
                             *kexp_command("train", "--runs-dir", str(runs_dir), *extra)],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"kexp train {' '.join(extra)} failed:\n{result.stderr[-3000:]}")
    max_rss_kb = int(result.stdout.strip().splitlines()[-1])
    run_dir = runs.list_runs(runs_dir)[-1]
    status = runs.read_status(run_dir)
    recorded = runs.read_json(run_dir / runs.CONFIG_FILE)
    history = runs.read_history(run_dir)
    return {"wall_seconds": wall, "max_rss_mb": max_rss_kb / 1024,
            "test_accuracy": status["test_accuracy"], "epochs": len(history),
            "steady_epoch_seconds": spread([row["seconds"] for row in history[1:]]),
            "data": recorded["data"]["description"],
            "train_samples": recorded["data"]["used_train_samples"], "run_dir": str(run_dir)}


# --- the run --------------------------------------------------------------------------------


def measure(args) -> dict:
    import tensorflow as tf

    work_dir = Path(tempfile.mkdtemp(prefix="kexp-bench-"))
    results: dict = {"machine": machine(tf), "settings": {
        "repeats": args.repeats, "train_samples": args.train_samples,
        "test_samples": TEST_SAMPLES, "epochs_per_fit": EPOCHS_PER_FIT,
        "measured_epochs_per_fit": EPOCHS_PER_FIT - 1, "batch_size": None, "seed": SEED,
        "matmul_size": MATMUL_SIZE}}
    bench_started = time.perf_counter()
    contenders = Contenders(args.train_samples, work_dir)
    results["settings"]["batch_size"] = contenders.config.batch_size
    results["data"] = contenders.data_summary["description"]
    plan = [("kexp", "mnist_cnn"), ("plain_pipeline", "mnist_cnn"), ("plain_arrays", "mnist_cnn"),
            ("kexp", "convnet")]
    if not args.skip_torch:
        if not TORCH_PYTHON.exists():
            log(f"creating the PyTorch venv: {TORCH_SETUP}")
            subprocess.run(TORCH_SETUP, shell=True, cwd=REPO_ROOT, check=True)
        plan.append(("torch", "convnet"))
    epochs: dict[str, list[float]] = {f"{who}/{model}": [] for who, model in plan}
    per_repeat: dict[str, list[float]] = {key: [] for key in epochs}
    peaks = []
    for repeat in range(args.repeats):
        shift = repeat % len(plan)
        for who, model in plan[shift:] + plan[:shift]:
            log(f"repeat {repeat + 1}/{args.repeats}: {who} {model}")
            seconds = getattr(contenders, who)(model)
            epochs[f"{who}/{model}"] += seconds
            per_repeat[f"{who}/{model}"].append(statistics.median(seconds))
        peaks.append(matmul_gflops())
        log(f"repeat {repeat + 1}: matmul {peaks[-1]:.1f} GFLOP/s")

    samples = args.train_samples
    results["epoch_seconds"] = {key: spread(values) for key, values in epochs.items()}
    results["samples_per_second"] = {key: spread([samples / s for s in values])
                                     for key, values in epochs.items()}
    results["matmul_gflops"] = spread(peaks)

    def ratio(numerator: str, denominator: str) -> dict:
        return {"ratio_of_medians": statistics.median(epochs[numerator])
                / statistics.median(epochs[denominator]),
                "per_repeat": spread([a / b for a, b in zip(per_repeat[numerator],
                                                            per_repeat[denominator])])}

    callback_seconds = contenders.callback_seconds_per_epoch
    results["overhead"] = {
        "kexp_vs_plain_fit": ratio("kexp/mnist_cnn", "plain_pipeline/mnist_cnn"),
        "plain_arrays_vs_plain_fit": ratio("plain_arrays/mnist_cnn", "plain_pipeline/mnist_cnn"),
        "in_callback_seconds_per_epoch": spread(callback_seconds),
        "in_callback_share_of_epoch": statistics.median(callback_seconds)
        / statistics.median(epochs["kexp/mnist_cnn"]),
    }
    from kexp.models import build_model

    flops = {}
    for model_name in ("mnist_cnn", "convnet"):
        counted = training_flops_per_sample(build_model(model_name, compile=False))
        rate = statistics.median([samples / s for s in epochs[f"kexp/{model_name}"]])
        achieved = rate * counted["training"] / 1e9
        flops[model_name] = {**counted, "samples_per_second": rate, "gflops": achieved,
                             "utilisation": achieved / max(peaks)}
    results["flops"] = flops
    if not args.skip_torch:
        results["torch"] = {**contenders.torch_info,
                            "kexp_vs_torch_throughput": 1 / ratio("kexp/convnet",
                                                                  "torch/convnet")["ratio_of_medians"],
                            "per_repeat_throughput_ratio": spread(
                                [b / a for a, b in zip(per_repeat["kexp/convnet"],
                                                       per_repeat["torch/convnet"])])}
        results["torch"].pop("epoch_seconds")
    results["tf_threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                             "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                             "cpus": os.cpu_count()}

    log("start-up and plotting")
    results["startup_and_plotting"] = startup_and_plotting(contenders.last_run_dir)

    log("default training (python -m kexp train), alternating with --deterministic")
    default_runs = work_dir / "default-runs"
    trainings = {"default": [], "deterministic": []}
    for _ in range(DETERMINISM_PAIRS):
        trainings["default"].append(default_training(default_runs))
        trainings["deterministic"].append(default_training(default_runs, "--deterministic"))
    results["default_train"] = trainings["default"][0]
    results["deterministic_train"] = trainings["deterministic"][0]
    pooled = {name: [seconds for run in runs_of_kind
                     for seconds in run["steady_epoch_seconds"]["values"]]
              for name, runs_of_kind in trainings.items()}
    results["deterministic_cost"] = {
        "ratio_of_medians": statistics.median(pooled["deterministic"])
        / statistics.median(pooled["default"]),
        "wall_seconds": {name: spread([run["wall_seconds"] for run in runs_of_kind])
                         for name, runs_of_kind in trainings.items()},
        "test_accuracy": {name: [run["test_accuracy"] for run in runs_of_kind]
                          for name, runs_of_kind in trainings.items()},
        "max_rss_mb": spread([run["max_rss_mb"] for kind in trainings.values()
                              for run in kind])}
    candidates = [Path(args.data)] if args.data else list(FULL_MNIST_CANDIDATES)
    full = next((path for path in candidates if path.is_file()), None)
    if full is None:
        results["full_mnist_train"] = {"skipped": "no full mnist.npz found (looked in "
                                       + ", ".join(map(str, candidates)) + ")"}
    else:
        log(f"DATA={full} training")
        results["full_mnist_train"] = default_training(default_runs, "--data", str(full))
    results["bench_seconds"] = time.perf_counter() - bench_started
    shutil.rmtree(work_dir, ignore_errors=True)
    return results


def machine(tf) -> dict:
    import keras

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "load_average_at_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                             time.gmtime())}


def table(results: dict) -> str:
    """The Markdown table printed at the end and pasted into README.md."""
    m, s = results["machine"], results["settings"]
    seconds, rates = results["epoch_seconds"], results["samples_per_second"]
    overhead, flops = results["overhead"], results["flops"]
    sp, default = results["startup_and_plotting"], results["default_train"]
    cost = results["deterministic_cost"]
    projected = (overhead["in_callback_seconds_per_epoch"]["median"]
                 / (FULL_EPOCH_SAMPLES / rates["kexp/mnist_cnn"]["median"]))
    rows = [
        ("1. callback overhead: kexp / plain `model.fit` (mnist_cnn, median epoch)",
         f"**{overhead['kexp_vs_plain_fit']['ratio_of_medians']:.3f}** (per repeat "
         f"{fmt(overhead['kexp_vs_plain_fit']['per_repeat'], 3)}); goal <= 1.02"),
        ("   time inside kexp's callbacks per epoch (snapshot + history + checkpoint)",
         f"{fmt(overhead['in_callback_seconds_per_epoch'], 1, 1000)} ms = "
         f"{overhead['in_callback_share_of_epoch'] * 100:.1f} % of a {s['train_samples']}-digit "
         f"epoch; {projected * 100:.2f} % of a 60,000-digit one (projected)"),
        ("   plain `fit` on numpy arrays / plain `fit` on kexp's tf.data pipeline",
         f"{overhead['plain_arrays_vs_plain_fit']['ratio_of_medians']:.3f}"),
    ]
    for model_name in ("mnist_cnn", "convnet"):
        counted = flops[model_name]
        rows.append((f"2. {model_name} throughput, samples/s (kexp)",
                     f"{fmt(rates[f'kexp/{model_name}'], 0)}; {counted['training'] / 1e6:.2f} "
                     f"MFLOP/sample -> {counted['gflops']:.1f} GFLOP/s = "
                     f"**{counted['utilisation'] * 100:.0f} %** of the matmul peak"))
    rows.append(("   float32 matmul peak (TensorFlow, 2048^2), GFLOP/s",
                 fmt(results["matmul_gflops"], 1)))
    if "torch" in results:
        torch = results["torch"]
        rows.append(("3. convnet: kexp / plain PyTorch loop, throughput",
                     f"**{torch['kexp_vs_torch_throughput']:.2f}** (per repeat "
                     f"{fmt(torch['per_repeat_throughput_ratio'])}); PyTorch "
                     f"{fmt(rates['torch/convnet'], 0)} samples/s, {torch['threads']} threads"))
    rows += [
        ("4. `python -m kexp --help`, wall s",
         f"{fmt(sp['help_seconds'])}; heavy modules imported: "
         f"{', '.join(sp['help_imports']) or 'none'}; goal < 0.5 s"),
        ("   `python -m kexp visualize RUN` (all figures, with start-up), wall s",
         fmt(sp["visualize_command_seconds"])),
        (f"   re-render all {sp['figures']} figures of a run in-process, s",
         fmt(sp["render_run_seconds"])),
        ("   one conv1 before/after/difference grid, ms", fmt(sp["conv1_grid_seconds"], 0, 1000)),
        ("5. default `python -m kexp train` (offline), wall s / test accuracy",
         f"{default['wall_seconds']:.1f} s / **{default['test_accuracy']:.4f}** "
         f"({default['epochs']} epochs, {default['train_samples']} digits)"),
        ("   DATA=path (full MNIST)",
         "skipped: no full mnist.npz here (see results.json)"
         if "skipped" in results["full_mnist_train"] else
         f"{results['full_mnist_train']['wall_seconds']:.1f} s / "
         f"{results['full_mnist_train']['test_accuracy']:.4f}"),
        ("6. peak RSS of the default training, MB",
         f"{default['max_rss_mb']:.0f} (all {len(cost['test_accuracy']['default']) * 2} "
         f"trainings: {fmt(cost['max_rss_mb'], 0)})"),
        ("   `--deterministic` cost: median epoch vs default",
         f"{cost['ratio_of_medians']:.3f}x; wall {fmt(cost['wall_seconds']['deterministic'], 1)}"
         f" s vs {fmt(cost['wall_seconds']['default'], 1)} s; accuracy "
         f"{', '.join(f'{a:.4f}' for a in cost['test_accuracy']['deterministic'])} vs "
         f"{', '.join(f'{a:.4f}' for a in cost['test_accuracy']['default'])}"),
    ]
    header = (f"Measured {m['date']} on {m['cpu']}, {m['cores']} cores, a machine shared with "
              f"other work (load average {m['load_average_at_start'][0]:.1f} at start); "
              f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, Python {m['python']}. "
              f"{s['repeats']} repeats, contenders alternating; {s['train_samples']} training "
              f"digits, batch {s['batch_size']}, {s['measured_epochs_per_fit']} measured epochs "
              f"per fit after a warm-up epoch; median (min-max). `make bench` took "
              f"{results['bench_seconds'] / 60:.1f} min.")
    lines = [header, "", "| measure | result |", "| --- | --- |"]
    lines += [f"| {name.strip()} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--train-samples", type=int, default=TRAIN_SAMPLES)
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--data", help="a full mnist.npz or IDX folder for the DATA=path row "
                        "(default: the first of " + ", ".join(map(str, FULL_MNIST_CANDIDATES))
                        + " that exists)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the last bench/results.json without measuring")
    args = parser.parse_args(argv)
    if args.table_only:
        print(table(json.loads(RESULTS_FILE.read_text())))
        return 0
    results = measure(args)
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"\nraw numbers: {RESULTS_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
