"""Question 000's [-1 1 -1] example: 3. the filter marks local peaks (and the answer's
printed numbers do not follow from its u); 4. would backpropagation turn 3 random numbers into
[-1, 1, -1]?"""

from __future__ import annotations

import math

import numpy as np

from kexp.filters import convolution
from kexp.experiments.demos.common import (DemoContext, fit_watching_kernel, import_keras,
                                           new_figure, seeded_sequential)

PEAK_SEEDS = (0, 1, 2, 3, 4)
PEAK_SEQUENCES = 2048
PEAK_LENGTH = 32
PEAK_EPOCHS = 20
PEAK_BATCH = 128
PEAK_LEARNING_RATE = 0.05
PEAK_TEST_SEED = 10_000  # the held-out sequences' generator; training uses the run's seed


def peak_filter_numbers() -> dict:
    """Question 000's [-1 1 -1] example computed again: the response, where it is positive, and how
    it compares with the numbers the answer printed."""
    u = convolution.QUESTION_PEAK_SEQUENCE
    response = convolution.peak_filter_response(u)
    printed = convolution.QUESTION_PEAK_RESPONSE
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
    figure = new_figure(10, 4.2)
    ax = figure.subplots()
    ax.plot(positions, u, "o-", color="tab:blue", label="u (question 000's rand(1,10))")
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
    keras = import_keras()
    x_test, y_test = peak_sequences(sequences, length, np.random.default_rng(PEAK_TEST_SEED))
    fixed = np.stack([convolution.correlate_1d(row[:, 0], convolution.PEAK_FILTER)
                      for row in x_test])
    fixed_accuracy = float(((fixed > 0) == (y_test[..., 0] > 0.5)).mean())
    reference = convolution.PEAK_FILTER / np.linalg.norm(convolution.PEAK_FILTER)
    second_difference = np.array([-1.0, 2.0, -1.0]) / math.sqrt(6.0)
    results = []
    for seed in seeds:
        x, y = peak_sequences(sequences, length, np.random.default_rng(seed))
        layer = keras.layers.Conv1D(1, 3, activation="sigmoid", name="peak",
                                    kernel_initializer=keras.initializers.GlorotUniform(seed))
        model = seeded_sequential(seed, (length, 1), [layer],
                                  keras.optimizers.Adam(learning_rate), "binary_crossentropy",
                                  metrics=("accuracy",))
        initial, kernel, _ = fit_watching_kernel(model, "peak", x, y, epochs, PEAK_BATCH)
        initial, kernel = initial[:, 0, 0], kernel[:, 0, 0]
        bias = float(layer.bias.numpy()[0])
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
    figure = new_figure(12, 4.2)
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
