"""`kexp demo NAME`: one small experiment per claim of the seed documents, with one figure each.

The three seed documents answer "how are the numbers in a CNN filter decided?". Each numbered
item of issue 3 is one function here: it computes the claim on real MNIST digits (the offline
mnist-5k subset, so every demo runs without network), returns the measured numbers and draws one
figure. Where a seed is wrong, the demo says so and shows the correction. `kexp demo all` (what
`make demos` runs) writes the figures, summary.json and summary.txt under <runs-dir>/demos/.

TensorFlow is imported only inside the demos that need it, so `kexp --help` stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexp import analysis, convolution, initializers
from kexp.config import DEFAULTS

# Every training demo uses these settings: small enough for 2 CPU cores in a few minutes.
DATA = "mnist-5k"
MODEL = "convnet"
EPOCHS = 3
TRAIN_SAMPLES = 4000
TEST_SAMPLES = 1000
SEED = 0
LEARNING_RATE = DEFAULTS.learning_rate

CONV1_SHAPE = (3, 3, 1, 32)
RANDOM_INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                       "lecun_uniform", "lecun_normal", "random_uniform", "random_normal",
                       "truncated_normal", "variance_scaling")
KS_DRAWS = 32  # conv1 kernels drawn per initializer: 32 x 288 = 9,216 weights
KS_ALPHA = 0.001
DESIGNED_FILTERS = ("sobel_x", "sobel_y", "laplacian", "gaussian", "peak")

PEAK_SEEDS = (0, 1, 2, 3, 4)
PEAK_SEQUENCES = 2048
PEAK_LENGTH = 32
PEAK_EPOCHS = 20
PEAK_BATCH = 128
PEAK_LEARNING_RATE = 0.05

FLIP_FILTERS = 4
FLIP_STEPS = 40
FLIP_BATCH = 32
FLIP_LEARNING_RATE = 0.05

BLUR_SIZE = 5
BLUR_SIGMA = 1.0
BLUR_IMAGES = 1000
BLUR_EPOCHS = 10
BLUR_LEARNING_RATE = 0.5  # SGD with momentum: Adam at 0.01 needs ~6x the steps on this
BLUR_MOMENTUM = 0.9       # ill-conditioned problem (digit pixels are strongly correlated)
BLUR_BATCH = 32

DEMOS_DIR = "demos"
DEMO_RUNS_DIR = "runs"
SUMMARY_JSON = "summary.json"
SUMMARY_TEXT = "summary.txt"


class DemoError(ValueError):
    """A demo name that does not exist."""


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


# ---------------------------------------------------------------------------------------------
# Shared pieces: the goodness-of-fit test, cached training runs, figure saving.

def ks_statistic(values: np.ndarray, cdf) -> float:
    """Kolmogorov-Smirnov distance between the sample's empirical CDF and `cdf`."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    n = len(x)
    expected = cdf(x)
    return float(max((np.arange(1, n + 1) / n - expected).max(),
                     (expected - np.arange(n) / n).max()))


def ks_critical_value(count: int, alpha: float = KS_ALPHA) -> float:
    """The distance a correct distribution exceeds with probability `alpha` (asymptotic
    Kolmogorov bound sqrt(-ln(alpha/2)/2)/sqrt(n)); a wrong one exceeds it for large n."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) / math.sqrt(count)


def same_std_other_family(theory: initializers.Theory) -> initializers.Theory:
    """The 'wrong distribution' a goodness-of-fit test must reject: the same mean and standard
    deviation, the other shape (uniform <-> truncated normal)."""
    if theory.kind == "uniform":
        return initializers.truncated_theory(theory.mean, theory.std / initializers.TRUNCATION_STD_FACTOR,
                                       "truncated normal")
    half = math.sqrt(3.0) * theory.std
    return initializers.uniform_theory(theory.mean - half, theory.mean + half, "uniform")


def draw_conv1_kernels(spec: str, draws: int, shape=CONV1_SHAPE) -> np.ndarray:
    """`draws` conv1 kernels from `spec` with seeds 0..draws-1, called as a Conv2D layer calls
    its kernel initializer: (draws, *shape)."""
    _keras()
    return np.stack([np.asarray(initializers.build_keras_initializer(spec, seed=seed)(shape))
                     for seed in range(draws)])


def initializer_fit(spec: str, draws: int = KS_DRAWS, shape=CONV1_SHAPE) -> dict:
    """Empirical mean, std and range of drawn kernels next to the theory, and KS distances to
    the exact distribution and to a wrong one with the same std."""
    values = draw_conv1_kernels(spec, draws, shape).ravel()
    theory = initializers.theory(spec, shape)
    wrong = same_std_other_family(theory)
    critical = ks_critical_value(values.size)
    ks = ks_statistic(values, theory.cdf)
    ks_wrong = ks_statistic(values, wrong.cdf)
    return {"initializer": spec, "weights": int(values.size), "theory": theory.description,
            "mean": float(values.mean()), "theory_mean": theory.mean,
            "std": float(values.std()), "theory_std": theory.std,
            "min": float(values.min()), "max": float(values.max()),
            "theory_low": theory.low, "theory_high": theory.high,
            "ks": ks, "ks_critical": critical, "fits": ks < critical,
            "wrong_family": wrong.kind, "ks_wrong": ks_wrong, "wrong_rejected": ks_wrong > critical,
            "values": values}


def orthogonality_error(spec: str = "orthogonal", shape=CONV1_SHAPE) -> float:
    """The orthogonal initializer has no per-entry law; its flattened 9x32 kernel has orthonormal
    rows (times gain). Returns max |W W^T - gain^2 I|."""
    kernel = draw_conv1_kernels(spec, 1, shape)[0]
    flat = kernel.reshape(-1, shape[-1])
    gain = initializers.parse_spec(spec).params["gain"]
    return float(np.abs(flat @ flat.T - gain**2 * np.eye(flat.shape[0])).max())


@dataclass
class DemoContext:
    """Where a demo writes, and the training runs it shares with other demos in this process."""

    out_dir: Path
    figures_dir: Path | None = None
    runs: dict = field(default_factory=dict)

    def save(self, figure, stem: str) -> Path:
        """Write the figure as <stem>.png (and into figures_dir), atomically."""
        from kexp import runs

        png = _compact_png(figure)
        for folder in filter(None, (self.out_dir, self.figures_dir)):
            folder.mkdir(parents=True, exist_ok=True)
            runs.write_bytes_atomic(folder / f"{stem}.png", png)
        return self.out_dir / f"{stem}.png"

    def run(self, init: str, freeze: tuple[str, ...] = (), learning_rate: float = LEARNING_RATE
            ) -> dict:
        """Train (once per process) the demo model with `init`; returns its conv kernels before
        and after, test accuracy and run folder."""
        key = (init, tuple(freeze), learning_rate)
        if key not in self.runs:
            _keras()
            from kexp import runs, train
            from kexp.config import TrainConfig

            config = TrainConfig(model=MODEL, init=init, freeze=list(freeze), epochs=EPOCHS,
                                 learning_rate=learning_rate, seed=SEED, data=DATA,
                                 train_samples=TRAIN_SAMPLES, test_samples=TEST_SAMPLES,
                                 runs_dir=str(self.out_dir / DEMO_RUNS_DIR))
            run_dir = train.train(config, verbose=0)
            kernels = run_dir / runs.KERNELS_DIR
            self.runs[key] = {"before": runs.load_kernels(kernels / "initial.npz"),
                              "after": runs.load_kernels(kernels / "final.npz"),
                              "test_accuracy": runs.read_status(run_dir)["test_accuracy"],
                              "run_dir": str(run_dir)}
        return self.runs[key]


def _compact_png(figure) -> bytes:
    """The figure as a PNG with a 256-colour palette: a third of the size or less, so the
    README's copies stay small, and no visible change for these flat-coloured plots."""
    import io

    from PIL import Image

    from kexp import plots

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=plots.DPI, format="png")
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").quantize(256)
    compact = io.BytesIO()
    image.save(compact, format="png", optimize=True)
    return compact.getvalue()


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _tiles_image(ax, tiles: np.ndarray, limit: float, title: str, cols: int | None = None):
    from kexp import plots

    rows, columns = plots.grid_shape(len(tiles)) if cols is None else (
        math.ceil(len(tiles) / cols), cols)
    return plots.draw_mosaic(ax, plots.tile(tiles, rows, columns), limit, title)


def _matrix(ax, matrix: np.ndarray, limit: float, title: str, annotate: bool = True):
    """A small matrix drawn with the shared colour scale, each value written in its cell."""
    from kexp import plots

    image = ax.imshow(matrix, cmap=plots.CMAP, vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if annotate:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 * limit else "black")
    return image


# ---------------------------------------------------------------------------------------------
# Seed 000: how the numbers of a filter are decided.

def demo_init_distribution(ctx: DemoContext) -> dict:
    """1. The initial filter numbers are random draws, centred at 0, from exactly the
    distribution the initializer states."""
    rows = [initializer_fit(spec) for spec in RANDOM_INITIALIZERS]
    figure = _figure(15, 6.4)
    axes = figure.subplots(2, 5).ravel()
    for ax, row in zip(axes, rows):
        theory = initializers.theory(row["initializer"], CONV1_SHAPE)
        span = max(abs(row["min"]), abs(row["max"])) * 1.1
        ax.hist(row["values"], bins=40, range=(-span, span), density=True, color="#9ecae1",
                histtype="stepfilled", label="measured")
        xs = np.linspace(-span, span, 400)
        ax.plot(xs, theory.pdf(xs), color="black", lw=1.5, label="exact density")
        ax.plot(xs, same_std_other_family(theory).pdf(xs), color="tab:red", lw=1, ls="--",
                label="same std, other shape")
        verdict = "fits" if row["fits"] else "DOES NOT FIT"
        ax.set_title(f"{row['initializer']}\nKS {row['ks']:.4f} ({verdict}, crit "
                     f"{row['ks_critical']:.4f})\nwrong shape: KS {row['ks_wrong']:.4f}",
                     fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="lower center")
    figure.suptitle(f"1. Initial conv1 weights ({KS_DRAWS} draws of {CONV1_SHAPE} per "
                    f"initializer) against each initializer's exact distribution; "
                    f"Kolmogorov-Smirnov at alpha={KS_ALPHA}", fontsize=11)
    ctx.save(figure, "01_init_distribution")
    table = [{key: value for key, value in row.items() if key != "values"} for row in rows]
    fitted = sum(row["fits"] for row in rows)
    rejected = sum(row["wrong_rejected"] for row in rows)
    error = orthogonality_error()
    return {"initializers": table, "orthogonal_max_error": error,
            "summary": f"{fitted}/{len(rows)} random initializers fit their exact distribution "
                       f"(KS < {rows[0]['ks_critical']:.4f}); the same-std wrong shape is "
                       f"rejected for {rejected}/{len(rows)}; every mean is within "
                       f"{max(abs(r['mean']) for r in rows):.4f} of 0; orthogonal: "
                       f"max |W W^T - I| = {error:.1e}"}


def demo_backprop_change(ctx: DemoContext) -> dict:
    """2. Backpropagation changes the filters; with learning rate 0 nothing changes at all."""
    trained = ctx.run("glorot_uniform")
    control = ctx.run("glorot_uniform", learning_rate=0.0)
    change = {name: analysis.relative_change(run["before"]["conv1"], run["after"]["conv1"])
              for name, run in (("trained", trained), ("control", control))}
    conv2_change = analysis.relative_change(trained["before"]["conv2"], trained["after"]["conv2"])
    figure = _figure(11, 4)
    ax = figure.subplots()
    filters = np.arange(1, 33)
    ax.bar(filters - 0.2, change["trained"], width=0.4, color="tab:purple",
           label=f"learning rate {LEARNING_RATE:g} (test accuracy {trained['test_accuracy']:.3f})")
    ax.bar(filters + 0.2, change["control"], width=0.4, color="tab:gray",
           label=f"learning rate 0 (control): max change {change['control'].max():g}")
    ax.set_xlabel("conv1 filter")
    ax.set_ylabel("||after - before|| / ||before||")
    ax.set_xticks(filters)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=9)
    ax.set_title(f"2. How far backpropagation moved each conv1 filter ({MODEL}, {EPOCHS} epochs "
                 f"on {TRAIN_SAMPLES} MNIST digits)", fontsize=11)
    ctx.save(figure, "02_backprop_change")
    return {"conv1_change_mean": float(change["trained"].mean()),
            "conv1_change_min": float(change["trained"].min()),
            "conv1_change_max": float(change["trained"].max()),
            "conv2_change_mean": float(conv2_change.mean()),
            "control_change_max": float(change["control"].max()),
            "per_filter": change["trained"].tolist(),
            "summary": f"conv1 filters moved by {change['trained'].mean():.3f} of their norm on "
                       f"average (min {change['trained'].min():.3f}, max "
                       f"{change['trained'].max():.3f}); conv2 by {conv2_change.mean():.3f}; "
                       f"with learning rate 0 the largest change is {change['control'].max():g}"}


def peak_filter_numbers() -> dict:
    """Seed 000's [-1 1 -1] example computed again: the response, where it is positive, and how
    it compares with the numbers the answer printed."""
    u = convolution.SEED_PEAK_SEQUENCE
    response = convolution.peak_filter_response(u)
    printed = convolution.SEED_PEAK_RESPONSE
    windows = np.stack([u[k:k + 3] for k in range(len(response))])
    fit = np.linalg.lstsq(windows, printed, rcond=None)
    return {"sequence": u.tolist(), "response": np.round(response, 4).tolist(),
            "printed_response": printed.tolist(),
            "max_difference_to_printed": float(np.abs(response - printed).max()),
            "best_3tap_fit_residual": float(np.sqrt(fit[1][0])) if len(fit[1]) else 0.0,
            "local_peaks": convolution.local_peaks(u),
            "positive_response_at": convolution.positive_response_positions(response),
            "max_pool_point": int(np.argmax(response)) + 2,
            "printed_max_pool_point": int(np.argmax(printed)) + 2}


def demo_peak_filter(ctx: DemoContext) -> dict:
    """3. The [-1 1 -1] filter marks local peaks, though the answer's printed numbers are not
    what conv(u, v, 'valid') gives for its u."""
    result = peak_filter_numbers()
    u = np.array(result["sequence"])
    positions = np.arange(1, len(u) + 1)
    centres = np.arange(2, len(u))
    figure = _figure(10, 4.2)
    ax = figure.subplots()
    ax.plot(positions, u, "o-", color="tab:blue", label="u (seed's rand(1,10))")
    ax.plot(centres, result["response"], "s-", color="tab:red",
            label="conv(u, [-1 1 -1], 'valid'), recomputed")
    ax.plot(centres, result["printed_response"], "x--", color="0.5",
            label="the answer's printed y (does not follow from u)")
    for peak in result["local_peaks"]:
        ax.axvline(peak, color="tab:green", alpha=0.3, lw=6)
    ax.axhline(0, color="black", lw=0.7)
    ax.set_xticks(positions)
    ax.set_xlabel("point (1-based)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"3. Peak filter: response > 0 exactly at the local peaks "
                 f"{result['local_peaks']} (green); max-pool picks point "
                 f"{result['max_pool_point']}", fontsize=10)
    ctx.save(figure, "03_peak_filter")
    result["summary"] = (f"recomputed y = {' '.join(f'{v:.4f}' for v in result['response'])}; "
                         f"the printed y differs by up to {result['max_difference_to_printed']:.4f}"
                         f" and no 3-tap filter maps u to it (residual "
                         f"{result['best_3tap_fit_residual']:.3f}); positive at points "
                         f"{result['positive_response_at']} = the local peaks "
                         f"{result['local_peaks']}; max-pool -> point {result['max_pool_point']}")
    return result


def peak_sequences(count: int, length: int, rng: np.random.Generator):
    """Random sequences U(0,1) and, for every interior point, 1 if it is a local peak."""
    u = rng.random((count, length))
    peaks = (u[:, 1:-1] > u[:, :-2]) & (u[:, 1:-1] > u[:, 2:])
    return u[..., np.newaxis].astype(np.float32), peaks[..., np.newaxis].astype(np.float32)


def learn_peak_filter(seeds=PEAK_SEEDS, sequences: int = PEAK_SEQUENCES,
                      length: int = PEAK_LENGTH, epochs: int = PEAK_EPOCHS,
                      learning_rate: float = PEAK_LEARNING_RATE) -> dict:
    """Train Conv1D(1 filter, size 3) + sigmoid from a random start to mark local peaks, once per
    seed; returns each learned kernel, its cosine with [-1, 1, -1] and accuracies."""
    keras = _keras()
    x_test, y_test = peak_sequences(sequences, length, np.random.default_rng(10_000))
    fixed = np.stack([convolution.correlate_1d(row[:, 0], convolution.PEAK_FILTER)
                      for row in x_test])
    fixed_accuracy = float(((fixed > 0) == (y_test[..., 0] > 0.5)).mean())
    reference = convolution.PEAK_FILTER / np.linalg.norm(convolution.PEAK_FILTER)
    second_difference = np.array([-1.0, 2.0, -1.0]) / math.sqrt(6.0)
    results = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        x, y = peak_sequences(sequences, length, np.random.default_rng(seed))
        model = keras.Sequential([
            keras.Input((length, 1)),
            keras.layers.Conv1D(1, 3, activation="sigmoid", name="peak",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy",
                      metrics=["accuracy"])
        initial = model.get_layer("peak").kernel.numpy()[:, 0, 0].astype(float)
        model.fit(x, y, epochs=epochs, batch_size=PEAK_BATCH, verbose=0, shuffle=True)
        kernel = model.get_layer("peak").kernel.numpy()[:, 0, 0].astype(float)
        bias = float(model.get_layer("peak").bias.numpy()[0])
        accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
        unit = kernel / np.linalg.norm(kernel)
        results.append({"seed": seed, "initial": initial.tolist(), "kernel": kernel.tolist(),
                        "bias": bias, "normalised": unit.tolist(),
                        "cosine_with_peak_filter": float(unit @ reference),
                        "cosine_with_second_difference": float(unit @ second_difference),
                        "initial_cosine": float(initial @ reference / np.linalg.norm(initial)),
                        "accuracy": accuracy})
    return {"seeds": results, "fixed_filter_accuracy": fixed_accuracy,
            "reference": reference.tolist(),
            "mean_cosine": float(np.mean([r["cosine_with_peak_filter"] for r in results])),
            "min_cosine": float(np.min([r["cosine_with_peak_filter"] for r in results]))}


def demo_learn_peak(ctx: DemoContext) -> dict:
    """4. Would backpropagation turn 3 random numbers into [-1, 1, -1]? Train it and see."""
    result = learn_peak_filter()
    figure = _figure(12, 4.2)
    left, right = figure.subplots(1, 2)
    taps = np.array([-1, 0, 1])
    for row in result["seeds"]:
        left.plot(taps, row["initial"] / np.linalg.norm(row["initial"]), ":", color="0.6", lw=1)
        left.plot(taps, row["normalised"], "o-", lw=1.2,
                  label=f"seed {row['seed']}: cos {row['cosine_with_peak_filter']:.3f}")
    left.plot(taps, result["reference"], "k-", lw=3, alpha=0.5, label="[-1, 1, -1] / sqrt 3")
    left.set_xticks(taps, ["u[n-1]", "u[n]", "u[n+1]"])
    left.set_ylabel("kernel / ||kernel||")
    left.set_title("learned kernels (dotted: their random starts)", fontsize=10)
    left.legend(fontsize=7)
    names = [f"seed {row['seed']}" for row in result["seeds"]] + ["[-1 1 -1],\nthreshold 0"]
    accuracies = [row["accuracy"] for row in result["seeds"]] + [result["fixed_filter_accuracy"]]
    right.bar(names, accuracies, color=["tab:blue"] * len(result["seeds"]) + ["0.5"])
    right.set_ylim(min(accuracies) - 0.05, 1.0)
    right.set_ylabel("per-point accuracy (held-out sequences)")
    right.set_title("is point n a local peak?", fontsize=10)
    right.tick_params(labelsize=8)
    figure.suptitle(f"4. Conv1D(1 filter, size 3) + sigmoid trained from random starts on "
                    f"{PEAK_SEQUENCES} random sequences to mark local peaks", fontsize=11)
    ctx.save(figure, "04_learn_peak")
    biases = [row["bias"] for row in result["seeds"]]
    cosines = [row["cosine_with_peak_filter"] for row in result["seeds"]]
    second = [row["cosine_with_second_difference"] for row in result["seeds"]]
    starts = ", ".join(f"{row['initial_cosine']:.2f}" for row in result["seeds"])
    mean_kernel = np.mean([row["normalised"] for row in result["seeds"]], axis=0)
    result["summary"] = (
        f"learned kernels (normalised, mean over {len(biases)} seeds) = "
        f"[{', '.join(f'{v:.3f}' for v in mean_kernel)}] vs [-0.577, 0.577, -0.577]; cosine "
        f"with [-1, 1, -1] {min(cosines):.3f}..{max(cosines):.3f} (random starts: {starts}); "
        f"cosine with [-1, 2, -1] {min(second):.3f}..{max(second):.3f}; "
        f"biases {min(biases):.2f}..{max(biases):.2f}; accuracy "
        f"{np.mean([r['accuracy'] for r in result['seeds']]):.3f} vs "
        f"{result['fixed_filter_accuracy']:.3f} for the fixed [-1 1 -1] with threshold 0")
    return result


def _accuracy_bars(ax, labels: list[str], accuracies: list[float], colours: list[str], title: str):
    positions = np.arange(len(labels))
    ax.barh(positions, accuracies, color=colours)
    for position, accuracy in zip(positions, accuracies):
        ax.text(accuracy + 0.003, position, f"{accuracy:.3f}", va="center", fontsize=8)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlim(max(0.0, min(accuracies) - 0.1), 1.0)
    ax.invert_yaxis()
    ax.set_xlabel(f"test accuracy ({TEST_SAMPLES} held-out digits)")
    ax.set_title(title, fontsize=10)


def demo_image_patches(ctx: DemoContext) -> dict:
    """5. 'Is the kernel a patch from the image?' Start from real image patches and compare."""
    from kexp import plots

    setups = [("image_patches", ()), ("glorot_uniform", ()), ("image_patches", ("conv1",)),
              ("glorot_uniform", ("conv1",))]
    runs = {setup: ctx.run(*setup) for setup in setups}
    patches = plots.filter_tiles(runs[setups[0]]["before"]["conv1"])
    random = plots.filter_tiles(runs[setups[1]]["before"]["conv1"])
    figure = _figure(15, 3.6)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.1])
    image = _tiles_image(axes[0], patches, plots.symmetric_limit(patches),
                         "image_patches: 32 patches of training digits\n(zero mean, norm 1)")
    figure.colorbar(image, ax=axes[0], shrink=0.7)
    image = _tiles_image(axes[1], random, plots.symmetric_limit(random),
                         "glorot_uniform: 32 random filters\n(own colour scale)")
    figure.colorbar(image, ax=axes[1], shrink=0.7)
    labels = [f"{init}{' (conv1 frozen)' if freeze else ''}" for init, freeze in setups]
    accuracies = [runs[setup]["test_accuracy"] for setup in setups]
    _accuracy_bars(axes[2], labels, accuracies, ["tab:green", "tab:blue", "tab:olive", "0.6"],
                   f"after {EPOCHS} epochs on {TRAIN_SAMPLES} digits")
    figure.suptitle("5. Kernels cut from training images vs random kernels", fontsize=11)
    ctx.save(figure, "05_image_patches")
    edge = {labels[i]: float(analysis.edge_likeness(runs[setup]["before"]["conv1"]).mean())
            for i, setup in enumerate(setups[:2])}
    result = {"test_accuracy": dict(zip(labels, accuracies)), "initial_edge_likeness": edge}
    result["summary"] = "test accuracy " + ", ".join(
        f"{label} {accuracy:.3f}" for label, accuracy in zip(labels, accuracies))
    return result


def demo_designed_filters(ctx: DemoContext) -> dict:
    """6. Hand-designed filters, frozen or trainable, against filters learned from random."""
    from kexp import custom_initializers, plots

    setups = ([("glorot_uniform", ())] + [(name, ("conv1",)) for name in DESIGNED_FILTERS]
              + [("glorot_uniform", ("conv1",))] + [(name, ()) for name in DESIGNED_FILTERS])
    runs = {setup: ctx.run(*setup) for setup in setups}
    labels = [f"{init} ({'frozen' if freeze else 'trainable'})" for init, freeze in setups]
    accuracies = [runs[setup]["test_accuracy"] for setup in setups]
    colours = ["tab:blue"] + ["tab:orange"] * len(DESIGNED_FILTERS) + ["0.6"] + \
        ["tab:green"] * len(DESIGNED_FILTERS)
    bases = np.stack([custom_initializers.DesignedFilters(name).base() for name in
                      DESIGNED_FILTERS])
    bases = bases / np.linalg.norm(bases.reshape(len(bases), -1), axis=1)[:, None, None]
    figure = _figure(14, 5.2)
    grid = figure.add_gridspec(2, 2, width_ratios=[1, 1.4], height_ratios=[1, 1])
    limit = float(np.abs(bases).max())
    for index, name in enumerate(DESIGNED_FILTERS):
        sub = grid[0, 0].subgridspec(1, len(DESIGNED_FILTERS))[0, index]
        _matrix(figure.add_subplot(sub), bases[index], limit, name)
    sobel = custom_initializers.tile_filters(bases[0], CONV1_SHAPE, 1.0)
    _tiles_image(figure.add_subplot(grid[1, 0]), plots.filter_tiles(sobel), limit,
                 "the 32 conv1 filters of sobel_x: 8 rotations/mirrors x 2 signs")
    _accuracy_bars(figure.add_subplot(grid[:, 1]), labels, accuracies, colours,
                   f"{MODEL}, {EPOCHS} epochs, {TRAIN_SAMPLES} digits (conv2 always trains)")
    figure.suptitle("6. Designed filters as conv1: frozen (orange) or trainable (green) vs "
                    "learned from random (blue)", fontsize=11)
    ctx.save(figure, "06_designed_filters")
    table = dict(zip(labels, accuracies))
    learned = table["glorot_uniform (trainable)"]
    frozen_designed = [table[f"{name} (frozen)"] for name in DESIGNED_FILTERS]
    best = DESIGNED_FILTERS[int(np.argmax(frozen_designed))]
    return {"test_accuracy": table, "learned": learned,
            "best_frozen_designed": best, "best_frozen_designed_accuracy": max(frozen_designed),
            "summary": "test accuracy " + ", ".join(f"{k} {v:.3f}" for k, v in table.items())}


# ---------------------------------------------------------------------------------------------
# Seed 001: what Keras' 32 3x3 filters are.

def glorot_bounds_numbers(kernel: np.ndarray) -> dict:
    """The correct glorot_uniform limit and the seed's formula, against a measured kernel."""
    fan_in, fan_out = initializers.compute_fans(kernel.shape)
    limit = initializers.theory("glorot_uniform", kernel.shape).high
    seed_high, _ = initializers.seed_formula_bounds(kernel.shape)
    magnitudes = np.abs(kernel)
    return {"fan_in": fan_in, "fan_out": fan_out, "limit": limit, "seed_formula_bound": seed_high,
            "max_abs_weight": float(magnitudes.max()),
            "fraction_outside_limit": float((magnitudes > limit).mean()),
            "fraction_outside_seed_bounds": float((magnitudes > seed_high).mean())}


def demo_glorot_bounds(ctx: DemoContext) -> dict:
    """7. glorot_uniform's real bounds are +-sqrt(6/(fan_in+fan_out)), not +-6/(fan_in+fan_out)."""
    kernel = ctx.run("glorot_uniform")["before"]["conv1"]
    result = glorot_bounds_numbers(kernel)
    figure = _figure(9, 4)
    ax = figure.subplots()
    counts, _, _ = ax.hist(kernel.ravel(), bins=40, color="tab:blue", alpha=0.7,
                           label=f"conv1 before training ({kernel.size} weights)")
    ax.set_ylim(0, 1.5 * counts.max())
    for sign in (-1, 1):
        ax.axvline(sign * result["limit"], color="black", lw=2,
                   label=f"+-sqrt(6/(9+288)) = +-{result['limit']:.4f}" if sign > 0 else None)
        ax.axvline(sign * result["seed_formula_bound"], color="tab:red", ls="--", lw=2,
                   label=f"seed: +-6/(9+288) = +-{result['seed_formula_bound']:.4f}"
                   if sign > 0 else None)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_title(f"7. glorot_uniform: all weights inside +-{result['limit']:.4f}; "
                 f"{100 * result['fraction_outside_seed_bounds']:.0f}% outside the seed's "
                 f"+-{result['seed_formula_bound']:.4f}", fontsize=10)
    ctx.save(figure, "07_glorot_bounds")
    result["summary"] = (f"fan_in={result['fan_in']}, fan_out={result['fan_out']}: limit "
                         f"{result['limit']:.4f} vs the seed's {result['seed_formula_bound']:.4f};"
                         f" max |w| {result['max_abs_weight']:.4f}; "
                         f"{100 * result['fraction_outside_seed_bounds']:.1f}% of weights lie "
                         f"outside the seed's bounds, "
                         f"{100 * result['fraction_outside_limit']:g}% outside the correct ones")
    return result


def conv1_weights_report(model) -> dict:
    """What `trainable_weights` holds for conv1 and for the whole model."""
    conv1 = model.get_layer("conv1")
    weights = conv1.trainable_weights
    layers = {layer.name: [(weight.path, tuple(weight.shape)) for weight in layer.weights]
              for layer in model.layers if layer.weights}
    return {"conv1_weights": [(weight.path, tuple(weight.shape)) for weight in weights],
            "conv1_parameters": int(sum(np.prod(weight.shape) for weight in weights)),
            "conv1_count_params": int(conv1.count_params()),
            "kernel_is_first": weights[0] is conv1.kernel,
            "bias_is_second": weights[1] is conv1.bias,
            "conv1_non_trainable": len(conv1.non_trainable_weights),
            "model_trainable_parameters": int(sum(np.prod(weight.shape)
                                                  for weight in model.trainable_weights)),
            "model_count_params": int(model.count_params()), "layers": layers}


def demo_filters_are_weights(ctx: DemoContext) -> dict:
    """8. The filters are the weights: conv1's trainable weights are its kernel and bias, nothing
    else."""
    keras = _keras()
    from kexp.models import build_model

    keras.utils.set_random_seed(SEED)
    model = build_model(MODEL, seed=SEED)
    report = conv1_weights_report(model)
    figure = _figure(9, 3.8)
    ax = figure.subplots()
    names = list(report["layers"])
    kernels = [np.prod(report["layers"][name][0][1]) for name in names]
    biases = [np.prod(report["layers"][name][1][1]) for name in names]
    ax.barh(names, kernels, color="tab:blue", label="kernel (the filters)")
    ax.barh(names, biases, left=kernels, color="tab:orange", label="bias")
    for position, name in enumerate(names):
        kernel_shape, bias_shape = report["layers"][name][0][1], report["layers"][name][1][1]
        ax.text(kernels[position] + biases[position], position,
                f"  {kernel_shape} + {bias_shape} = {kernels[position] + biases[position]:,}",
                va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(100, 10 * max(kernels))
    ax.invert_yaxis()
    ax.set_xlabel("trainable parameters (log scale)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"8. Every trainable weight of {MODEL}: conv1 = kernel {CONV1_SHAPE} + bias "
                 f"(32,) = {report['conv1_parameters']};\nall layers together "
                 f"{report['model_trainable_parameters']:,} = model.count_params(): no other "
                 "set of filter parameters", fontsize=10)
    ctx.save(figure, "08_filters_are_weights")
    report["summary"] = (f"conv1.trainable_weights = {report['conv1_weights']} "
                         f"({report['conv1_parameters']} parameters, the very kernel and bias "
                         f"objects); the model's trainable weights sum to "
                         f"{report['model_trainable_parameters']:,} = count_params()")
    return report


def keras_conv2d(images: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
                 layer_class=None) -> np.ndarray:
    """The output of a Keras Conv2D (or `layer_class`) with the given kernel, 'valid' padding."""
    keras = _keras()
    layer_class = layer_class or keras.layers.Conv2D
    layer = layer_class(kernel.shape[-1], kernel.shape[:2], use_bias=bias is not None)
    layer.build(images.shape)
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return np.asarray(layer(images.astype(np.float32)))


def demo_conv_shapes(ctx: DemoContext) -> dict:
    """9. A 5x5 image and 32 3x3 kernels with 'valid' padding give 32 maps of 3x3; Keras computes
    cross-correlation, the seed's formula is a true convolution."""
    from kexp import data, plots

    digit = data.load(DATA).x_train[0].astype(np.float64) / 255.0
    image = digit[10:15, 10:15]
    kernel = draw_conv1_kernels("glorot_uniform", 1)[0]
    keras_out = keras_conv2d(image[None, :, :, None], kernel)
    correlation = convolution.conv2d_layer_reference(image[None, :, :, None], kernel)
    seed_formula = convolution.convolve2d_layer_reference(image[None, :, :, None], kernel)[0]
    seed_flipped = convolution.convolve2d_layer_reference(
        image[None, :, :, None], convolution.flip_kernel(kernel))[0]
    result = {"image_shape": list(image.shape), "kernel_shape": list(kernel.shape),
              "output_shape": list(keras_out.shape),
              "max_diff_correlation": float(np.abs(keras_out[0] - correlation[0]).max()),
              "max_diff_seed_formula": float(np.abs(keras_out[0] - seed_formula).max()),
              "max_diff_seed_formula_flipped": float(np.abs(keras_out[0] - seed_flipped).max())}
    figure = _figure(15, 3.4)
    axes = figure.subplots(1, 6)
    _matrix(axes[0], image, 1.0, "A: 5x5 crop of a digit")
    _matrix(axes[1], kernel[:, :, 0, 0], plots.symmetric_limit(kernel), "F_1 (of 32)")
    limit = plots.symmetric_limit(keras_out, seed_formula)
    _matrix(axes[2], keras_out[0, :, :, 0], limit, "Keras Conv2D: B_1")
    _matrix(axes[3], correlation[0, :, :, 0], limit,
            f"numpy sum F(l,m)A(i+l,j+m)\nmax diff {result['max_diff_correlation']:.1e}")
    _matrix(axes[4], seed_formula[:, :, 0], limit,
            f"seed: sum F(l,m)A(i-l,j-m)\nmax diff {result['max_diff_seed_formula']:.2f}")
    _matrix(axes[5], seed_flipped[:, :, 0], limit,
            f"seed's formula, F flipped\nmax diff {result['max_diff_seed_formula_flipped']:.1e}")
    figure.suptitle(f"9. A {image.shape} image and kernel {kernel.shape}, 'valid': Keras "
                    f"output {tuple(keras_out.shape)} = 32 maps of 3x3 (map 1 shown; "
                    "differences over all 32)", fontsize=11)
    ctx.save(figure, "09_conv_shapes")
    result["summary"] = (f"output {tuple(keras_out.shape)}; Keras vs numpy cross-correlation "
                         f"max diff {result['max_diff_correlation']:.1e}; vs the seed's formula "
                         f"{result['max_diff_seed_formula']:.3f} (a true convolution), "
                         f"{result['max_diff_seed_formula_flipped']:.1e} once F is flipped")
    return result


def demo_edge_detectors(ctx: DemoContext) -> dict:
    """10. Do first-layer filters become edge detectors? Edge-likeness before and after."""
    from kexp import plots

    run = ctx.run("glorot_uniform")
    scores = {(layer, when): analysis.edge_likeness(run[when][layer])
              for layer in ("conv1", "conv2") for when in ("before", "after")}
    before = plots.filter_tiles(run["before"]["conv1"])
    after = plots.filter_tiles(run["after"]["conv1"])
    limit = plots.symmetric_limit(before, after)
    figure = _figure(15, 4.2)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.3])
    _tiles_image(axes[0], before, limit, "conv1 before (shared scale)")
    _tiles_image(axes[1], after, limit, f"conv1 after {EPOCHS} epochs")
    order = np.argsort(scores["conv1", "after"])
    positions = np.arange(32)
    axes[2].plot(positions, scores["conv1", "before"][order], "o", color="0.5", ms=4,
                 label=f"conv1 before (mean {scores['conv1', 'before'].mean():.3f})")
    axes[2].plot(positions, scores["conv1", "after"][order], "o", color="tab:red", ms=4,
                 label=f"conv1 after (mean {scores['conv1', 'after'].mean():.3f})")
    for when, colour in (("before", "0.5"), ("after", "tab:red")):
        axes[2].axhline(scores["conv2", when].mean(), color=colour, ls=":",
                        label=f"conv2 {when}, mean over 64 filters "
                              f"({scores['conv2', when].mean():.3f})")
    axes[2].set_ylim(0, 1)
    axes[2].set_xlabel("conv1 filter (sorted by score after training)")
    axes[2].set_ylabel("edge-likeness: best |cos| with an edge filter")
    axes[2].legend(fontsize=7, loc="lower right")
    figure.suptitle("10. Edge-likeness of each 3x3 filter (1 = an oriented Sobel edge "
                    "detector), before and after training", fontsize=11)
    ctx.save(figure, "10_edge_detectors")
    result = {f"{layer}_{when}_mean": float(scores[layer, when].mean())
              for layer, when in scores}
    result.update(conv1_before=scores["conv1", "before"].tolist(),
                  conv1_after=scores["conv1", "after"].tolist(),
                  conv1_filters_more_edge_like=int((scores["conv1", "after"]
                                                    > scores["conv1", "before"]).sum()))
    result["summary"] = (f"conv1 edge-likeness {result['conv1_before_mean']:.3f} -> "
                         f"{result['conv1_after_mean']:.3f} "
                         f"({result['conv1_filters_more_edge_like']}/32 filters rose); conv2 "
                         f"{result['conv2_before_mean']:.3f} -> {result['conv2_after_mean']:.3f}")
    return result


# ---------------------------------------------------------------------------------------------
# Seed 002: convolution vs cross-correlation.

def demo_worked_example(ctx: DemoContext) -> dict:
    """11. The 1-D worked example, c = a * b, and the flip-and-shift picture behind it."""
    a, b = convolution.SEED_EXAMPLE_A, convolution.SEED_EXAMPLE_B
    c = convolution.convolve_1d(a, b)
    figure = _figure(15, 5)
    axes = figure.subplots(2, 4, sharey=True).ravel()
    for n, ax in enumerate(axes[:len(c)]):
        positions, (signal, kernel) = convolution.shifted_kernel_terms(a, b, n)
        ax.bar(positions - 0.15, signal, width=0.3, color="tab:blue", label="a[m]")
        ax.bar(positions + 0.15, kernel, width=0.3, color="tab:orange", label="b[n-m]")
        terms = " + ".join(f"{s:g}*{k:g}" for s, k in zip(signal, kernel) if s and k)
        ax.set_title(f"n={n}: c[{n}] = {terms} = {c[n]:g}", fontsize=8)
        ax.set_xticks(positions)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    axes[6].stem(np.arange(len(c)), c)
    axes[6].set_title(f"c = [{', '.join(f'{v:g}' for v in c)}]", fontsize=9)
    axes[7].axis("off")
    axes[7].text(0, 0.5, "a = [1, 0.5, 1, 1]\nb = [1, 0.5, 0.25]\n\nb is flipped, then shifted"
                 "\nby n; c[n] sums the\nproducts where they overlap", fontsize=10)
    figure.suptitle("11. Seed 002's worked example: c[n] = sum_m a[m] b[n-m]", fontsize=11)
    ctx.save(figure, "11_worked_example")
    return {"c": c.tolist(), "seed_c": convolution.SEED_EXAMPLE_C.tolist(),
            "matches_seed": bool(np.allclose(c, convolution.SEED_EXAMPLE_C)),
            "summary": f"c = {c.tolist()}, the seed's {convolution.SEED_EXAMPLE_C.tolist()}"}


def cross_correlation_check(seed: int = SEED) -> dict:
    """Keras Conv2D against the hand-written references on random multi-channel data."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(2, 7, 6, 3))
    kernel = rng.normal(size=(3, 3, 3, 4))
    bias = rng.normal(size=4)
    keras_out = keras_conv2d(images, kernel, bias)
    correlation = convolution.conv2d_layer_reference(images, kernel, bias)
    true_convolution = convolution.convolve2d_layer_reference(images, kernel, bias)
    flipped_convolution = convolution.convolve2d_layer_reference(
        images, convolution.flip_kernel(kernel), bias)
    return {"output_shape": list(keras_out.shape),
            "vs_cross_correlation": float(np.abs(keras_out - correlation).max()),
            "vs_convolution_flipped_kernel": float(np.abs(keras_out - flipped_convolution).max()),
            "vs_convolution_same_kernel": float(np.abs(keras_out - true_convolution).max()),
            "maps": (keras_out[0, :, :, 0], correlation[0, :, :, 0], true_convolution[0, :, :, 0])}


def demo_cross_correlation(ctx: DemoContext) -> dict:
    """12. Keras' Conv2D is cross-correlation = convolution with the kernel flipped."""
    from kexp import plots

    result = cross_correlation_check()
    maps = result.pop("maps")
    figure = _figure(13, 3.6)
    axes = figure.subplots(1, 4, width_ratios=[1, 1, 1, 1.4])
    limit = plots.symmetric_limit(*maps)
    for ax, matrix, title in zip(axes, maps, ("Keras Conv2D", "cross-correlation (numpy)",
                                               "true convolution, same kernel")):
        _matrix(ax, matrix, limit, title, annotate=False)
    names = ["cross-correlation", "convolution,\nkernel flipped", "convolution,\nsame kernel"]
    values = [result["vs_cross_correlation"], result["vs_convolution_flipped_kernel"],
              result["vs_convolution_same_kernel"]]
    axes[3].bar(names, [max(v, 1e-16) for v in values],
                color=["tab:green", "tab:green", "tab:red"])
    axes[3].set_yscale("log")
    axes[3].set_ylabel("max |Keras - reference|")
    axes[3].tick_params(labelsize=8)
    for position, value in enumerate(values):
        axes[3].text(position, max(value, 1e-16), f"{value:.1e}", ha="center", va="bottom",
                     fontsize=8)
    figure.suptitle(f"12. Random images (2, 7, 6, 3), kernel (3, 3, 3, 4): Keras equals "
                    "cross-correlation and flipped-kernel convolution (map 1 of 4 shown)",
                    fontsize=11)
    ctx.save(figure, "12_cross_correlation")
    result["summary"] = (f"max |Keras - cross-correlation| = {values[0]:.1e}, |Keras - "
                         f"convolution with flipped kernel| = {values[1]:.1e}, |Keras - "
                         f"convolution with the same kernel| = {values[2]:.2f}")
    return result


def flip_training_pair(steps: int = FLIP_STEPS, batch_size: int = FLIP_BATCH,
                       filters: int = FLIP_FILTERS, seed: int = SEED,
                       learning_rate: float = FLIP_LEARNING_RATE) -> dict:
    """Train a Conv2D net and the same net with a true-convolution layer started from the
    flipped kernels, on the same batches; record losses and kernels after every step."""
    keras = _keras()
    from kexp import data
    from kexp.layers import TrueConv2D

    dataset = data.load(DATA)
    images = data.to_model_inputs(dataset.x_train[:steps * batch_size])
    labels = dataset.y_train[:steps * batch_size]

    def build(conv_class):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            conv_class(filters, 3, activation="relu", name="conv",
                       kernel_initializer=keras.initializers.GlorotUniform(seed)),
            keras.layers.MaxPooling2D(4), keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="dense",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1))])
        model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy")
        return model

    correlating, convolving = build(keras.layers.Conv2D), build(TrueConv2D)
    kernel = correlating.get_layer("conv").kernel.numpy()
    convolving.get_layer("conv").kernel.assign(convolution.flip_kernel(kernel))
    losses = np.zeros((steps, 2))
    kernel_gap = np.zeros(steps + 1)
    kernels = [np.zeros((steps + 1, *kernel.shape)) for _ in range(2)]

    def record(step):
        first = correlating.get_layer("conv").kernel.numpy()
        second = convolving.get_layer("conv").kernel.numpy()
        kernels[0][step], kernels[1][step] = first, second
        kernel_gap[step] = np.abs(first - convolution.flip_kernel(second)).max()

    record(0)
    for step in range(steps):
        x = images[step * batch_size:(step + 1) * batch_size]
        y = labels[step * batch_size:(step + 1) * batch_size]
        losses[step] = [float(correlating.train_on_batch(x, y)),
                        float(convolving.train_on_batch(x, y))]
        record(step + 1)
    test = data.to_model_inputs(dataset.x_test[:256])
    outputs_gap = float(np.abs(correlating.predict(test, verbose=0)
                               - convolving.predict(test, verbose=0)).max())
    return {"losses": losses, "kernel_gap": kernel_gap, "kernels": kernels,
            "max_loss_gap": float(np.abs(losses[:, 0] - losses[:, 1]).max()),
            "max_kernel_gap": float(kernel_gap.max()), "max_output_gap": outputs_gap,
            "kernel_movement": float(np.abs(kernels[0][-1] - kernels[0][0]).max())}


def demo_flip_invariance(ctx: DemoContext) -> dict:
    """13. The flip does not matter for learning: a true-convolution layer learns the flipped
    kernels along the same trajectory."""
    from kexp import plots

    result = flip_training_pair()
    figure = _figure(15, 4)
    axes = figure.subplots(1, 3, width_ratios=[1.2, 1.2, 1])
    steps = np.arange(1, len(result["losses"]) + 1)
    axes[0].plot(steps, result["losses"][:, 0], color="tab:blue", lw=3, alpha=0.5,
                 label="Conv2D (cross-correlation)")
    axes[0].plot(steps, result["losses"][:, 1], "k--", lw=1, label="TrueConv2D (flips kernel)")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("batch loss")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"loss: max difference {result['max_loss_gap']:.1e}", fontsize=10)
    movement = np.abs(result["kernels"][0] - result["kernels"][0][0]).max(axis=(1, 2, 3, 4))
    axes[1].plot(np.arange(len(movement)), movement, color="tab:purple",
                 label="how far the Conv2D kernel moved (max |K_t - K_0|)")
    exact = "exactly 0 at every step, drawn at 1e-12" if result["max_kernel_gap"] == 0 else (
        "+1e-12 for the log scale")
    axes[1].plot(np.arange(len(movement)), result["kernel_gap"] + 1e-12, color="tab:red",
                 label=f"max |K_conv2d - flip(K_true)| ({exact})")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("training step")
    axes[1].legend(fontsize=8)
    axes[1].set_title(f"kernels: max gap {result['max_kernel_gap']:.1e}", fontsize=10)
    final = [plots.filter_tiles(result["kernels"][0][-1]),
             plots.filter_tiles(result["kernels"][1][-1])]
    both = np.concatenate([final[0], final[1]])
    _tiles_image(axes[2], both, plots.symmetric_limit(both),
                 "final kernels: top Conv2D,\nbottom TrueConv2D (= top rotated 180 deg)",
                 cols=len(final[0]))
    figure.suptitle(f"13. Same data, same seed, {len(steps)} SGD steps: the true convolution "
                    "learns exactly the flipped kernels", fontsize=11)
    ctx.save(figure, "13_flip_invariance")
    summary = {key: result[key] for key in ("max_loss_gap", "max_kernel_gap", "max_output_gap",
                                            "kernel_movement")}
    summary["summary"] = (f"over {len(steps)} steps: max loss difference "
                          f"{result['max_loss_gap']:.1e}, max |K_conv2d - flip(K_true)| "
                          f"{result['max_kernel_gap']:.1e} while the kernels moved by up to "
                          f"{result['kernel_movement']:.3f}; max output difference "
                          f"{result['max_output_gap']:.1e}")
    return summary


def learn_gaussian_blur(count: int = BLUR_IMAGES, epochs: int = BLUR_EPOCHS,
                        size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA, seed: int = SEED,
                        learning_rate: float = BLUR_LEARNING_RATE) -> dict:
    """Train one linear Conv2D(1 filter, size x size, no bias) to map MNIST digits to their
    Gaussian-blurred versions (made with the numpy reference); compare the kernel to the truth."""
    keras = _keras()
    from kexp import data

    truth = convolution.gaussian_kernel(size, sigma)
    images = data.to_model_inputs(data.load(DATA).x_train[:count])
    targets = convolution.correlate2d_valid_batch(images[..., 0], truth)[..., None]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(
        1, size, use_bias=False, name="blur",
        kernel_initializer=keras.initializers.GlorotUniform(seed))])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=BLUR_MOMENTUM),
                  loss="mse")
    initial = model.get_layer("blur").kernel.numpy()[:, :, 0, 0].astype(float)
    history = model.fit(images, targets.astype(np.float32), epochs=epochs, batch_size=BLUR_BATCH,
                        verbose=0, shuffle=True)
    learned = model.get_layer("blur").kernel.numpy()[:, :, 0, 0].astype(float)
    error = learned - truth
    return {"truth": truth, "initial": initial, "learned": learned,
            "max_abs_error": float(np.abs(error).max()),
            "relative_error": float(np.linalg.norm(error) / np.linalg.norm(truth)),
            "initial_relative_error": float(np.linalg.norm(initial - truth)
                                            / np.linalg.norm(truth)),
            "final_loss": float(history.history["loss"][-1]),
            "example": (images[0, :, :, 0], targets[0, :, :, 0],
                        np.asarray(model(images[:1]))[0, :, :, 0])}


def demo_gaussian_blur(ctx: DemoContext) -> dict:
    """14. A CNN can learn Gaussian smoothing: the learned kernel is the Gaussian."""
    from kexp import plots

    result = learn_gaussian_blur()
    figure = _figure(15, 3.4)
    axes = figure.subplots(1, 6)
    limit = plots.symmetric_limit(result["truth"], result["learned"])
    _matrix(axes[0], result["initial"], plots.symmetric_limit(result["initial"]),
            "random start (own scale)")
    _matrix(axes[1], result["truth"], limit, f"true Gaussian {BLUR_SIZE}x{BLUR_SIZE}, "
            f"sigma {BLUR_SIGMA:g}")
    _matrix(axes[2], result["learned"], limit, "learned kernel")
    error = result["learned"] - result["truth"]
    exponent = -math.floor(math.log10(max(result["max_abs_error"], 1e-30)))
    scaled = error * 10.0**exponent
    _matrix(axes[3], scaled, plots.symmetric_limit(scaled),
            f"error x 1e{exponent} (own scale)\nmax |error| {result['max_abs_error']:.1e}")
    digit, target, output = result["example"]
    axes[4].imshow(digit, cmap="gray_r")
    axes[4].set_title("a training digit", fontsize=9)
    axes[5].imshow(np.hstack([target, output]), cmap="gray_r")
    axes[5].set_title("blurred: target | model", fontsize=9)
    for ax in axes[4:]:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"14. Conv2D(1 filter, {BLUR_SIZE}x{BLUR_SIZE}, linear) trained on "
                    f"{BLUR_IMAGES} digits -> their Gaussian blur, {BLUR_EPOCHS} epochs: "
                    f"relative error {result['relative_error']:.1e}", fontsize=11)
    ctx.save(figure, "14_gaussian_blur")
    summary = {key: result[key] for key in ("max_abs_error", "relative_error",
                                            "initial_relative_error", "final_loss")}
    summary.update(truth=result["truth"].tolist(), learned=result["learned"].tolist())
    summary["summary"] = (f"learned 5x5 kernel vs true Gaussian: max |error| "
                          f"{result['max_abs_error']:.1e}, relative L2 error "
                          f"{result['relative_error']:.1e} (random start: "
                          f"{result['initial_relative_error']:.0%})")
    return summary


# ---------------------------------------------------------------------------------------------
# The command.

DEMOS = {
    "init_distribution": demo_init_distribution,
    "backprop_change": demo_backprop_change,
    "peak_filter": demo_peak_filter,
    "learn_peak": demo_learn_peak,
    "image_patches": demo_image_patches,
    "designed_filters": demo_designed_filters,
    "glorot_bounds": demo_glorot_bounds,
    "filters_are_weights": demo_filters_are_weights,
    "conv_shapes": demo_conv_shapes,
    "edge_detectors": demo_edge_detectors,
    "worked_example": demo_worked_example,
    "cross_correlation": demo_cross_correlation,
    "flip_invariance": demo_flip_invariance,
    "gaussian_blur": demo_gaussian_blur,
}
DEMO_NAMES = tuple(DEMOS)  # position + 1 is the item number in issue 3


def resolve(name: str) -> list[str]:
    """'all', a demo name or its item number -> demo names."""
    if name == "all":
        return list(DEMO_NAMES)
    if name in DEMOS:
        return [name]
    if name.isdigit() and 1 <= int(name) <= len(DEMO_NAMES):
        return [DEMO_NAMES[int(name) - 1]]
    raise DemoError(f"Invalid value for `name`: '{name}'. Expected one of: all, "
                    f"1..{len(DEMO_NAMES)}, {', '.join(DEMO_NAMES)}.")


def _plain(value):
    """numpy values -> JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_demos(names: list[str], out_dir: Path, figures_dir: Path | None = None) -> dict:
    """Run `names` in order; write summary.json (merged with earlier results) and summary.txt."""
    from kexp import runs

    ctx = DemoContext(Path(out_dir), Path(figures_dir) if figures_dir else None)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = ctx.out_dir / SUMMARY_JSON
    summary = runs.read_json(summary_path) if summary_path.exists() else {}
    for name in names:
        number = DEMO_NAMES.index(name) + 1
        started = time.time()
        result = _plain(DEMOS[name](ctx))
        result["seconds"] = round(time.time() - started, 1)
        summary[f"{number:02d}_{name}"] = result
        print(f"kexp demo {number:2d} {name} ({result['seconds']} s): {result['summary']}",
              flush=True)
        runs.write_json_atomic(summary_path, summary)
    lines = [f"{key}: {value['summary']}" for key, value in sorted(summary.items())]
    runs.write_bytes_atomic(ctx.out_dir / SUMMARY_TEXT, ("\n".join(lines) + "\n").encode())
    return summary


def _title(name: str) -> str:
    """A demo's first docstring sentence, without its item number."""
    text = " ".join(DEMOS[name].__doc__.split())
    return text.split(". ", 1)[1].split(". ")[0].split(": ")[0]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the experiments that mirror the seed documents' claims",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("name", nargs="?", help="a demo name or number (see --list), or 'all'")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir,
                        help=f"figures and summaries go to <runs-dir>/{DEMOS_DIR}/")
    parser.add_argument("--figures-dir", default=None,
                        help="also write every figure here (e.g. docs/figures)")
    parser.set_defaults(func=_demo_command)


def _demo_command(args) -> int:
    if args.list or not args.name:
        for number, name in enumerate(DEMO_NAMES, start=1):
            print(f"{number:2d} {name:<20} {_title(name)}")
        if not args.list:
            print("kexp demo: error: give a demo name or number, or 'all'", file=sys.stderr)
            return 2
        return 0
    try:
        names = resolve(args.name)
    except DemoError as error:
        print(f"kexp demo: error: {error}", file=sys.stderr)
        return 2
    started = time.time()
    out_dir = Path(args.runs_dir) / DEMOS_DIR
    run_demos(names, out_dir, args.figures_dir)
    print(f"kexp demo: {len(names)} demo(s) in {time.time() - started:.0f} s; figures and "
          f"{SUMMARY_TEXT} in {out_dir}")
    return 0
