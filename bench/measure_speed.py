"""Numbers from the speed repeats: kexp's overhead over a plain fit, the checkpoint options,
throughput and utilisation of the attainable peak, and the PyTorch peer."""

from __future__ import annotations

import math
import statistics
import time

import keras
import tensorflow as tf

from kexp.network.models import build_model

from checkpoint_options import OPTIONS
from common import DEFAULT_MODEL, TORCH_PEER_MODEL, spread

MATMUL_SIZE = 2048
MATMUL_CALLS = 5


def training_flops_per_sample(model) -> dict:
    """Forward FLOPs (2 per multiply-add) of every Conv2D and Dense layer, from its shapes, and
    forward+backward: backward costs one weight gradient per layer plus one input gradient per
    layer after the first (nothing needs the gradient of the input image). Pooling, activations
    and biases are memory-bound and left out."""
    forward, backward, layers = 0, 0, {}
    counted = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    for index, layer in enumerate(counted):
        positions = 1
        for size in layer.output.shape[1:-1]:  # output height x width (none for Dense)
            positions *= int(size)
        layer_forward = 2 * math.prod(layer.kernel.shape) * positions
        layers[layer.name] = layer_forward
        forward += layer_forward
        backward += layer_forward * (1 if index == 0 else 2)
    return {"forward": forward, "training": forward + backward, "layers": layers}


def matmul_gflops() -> float:
    """Best-of-calls GFLOP/s of a MATMUL_SIZE^2 float32 TensorFlow matmul: the attainable peak."""
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


def _pooled(records: list[dict]) -> list[float]:
    return [seconds for record in records for seconds in record["epoch_seconds"]]


def fit_ratio(records: dict, numerator: str, denominator: str) -> dict:
    """numerator/denominator of the measured fit's seconds in every repeat (both ran in it), and
    of the median epochs over all repeats."""
    return {"per_repeat_whole_fit": spread([
        sum(top["epoch_seconds"]) / sum(bottom["epoch_seconds"])
        for top, bottom in zip(records[numerator], records[denominator])]),
        "ratio_of_median_epochs": statistics.median(_pooled(records[numerator]))
        / statistics.median(_pooled(records[denominator]))}


def overhead(records: dict) -> dict:
    """kexp's cost over the plain fit of the default model: inside its callbacks (measured per
    epoch, as a share of that repeat's kexp epochs) and on the whole fit."""
    kexp = records[f"kexp/{DEFAULT_MODEL}"]
    breakdown = {name: spread([record["callback_breakdown"][name] for record in kexp])
                 for name in kexp[0]["callback_breakdown"]}
    plain = records[f"plain/{DEFAULT_MODEL}"]
    forces = [seconds for record in kexp for seconds in record.get("forces_seconds", ()) if seconds]
    return {"kexp_vs_plain": fit_ratio(records, f"kexp/{DEFAULT_MODEL}", f"plain/{DEFAULT_MODEL}"),
            # The forces are computed at six moments of any run (kexp.training.forces): in this
            # short fit after most measured epochs, in the default 60-epoch run after 4 of 60.
            "kexp_without_forces_vs_plain": spread([
                (sum(top["epoch_seconds"]) - sum(top["forces_seconds"]))
                / sum(bottom["epoch_seconds"]) for top, bottom in zip(kexp, plain)])
            if "forces_seconds" in kexp[0] else None,
            "forces_epochs": sum(1 for seconds in kexp[0].get("forces_seconds", ()) if seconds),
            "measured_epochs": len(kexp[0]["epoch_seconds"]),
            "forces_seconds_per_moment": spread(forces) if forces else None,
            "in_callback_seconds_per_epoch": spread(
                [statistics.mean(record["callback_seconds"]) for record in kexp]),
            "in_callback_share_of_epoch": spread(
                [sum(record["callback_seconds"]) / sum(record["epoch_seconds"])
                 for record in kexp]),
            "in_callback_breakdown_seconds": breakdown}


def checkpoint_costs(records: list[dict]) -> dict:
    """Each checkpoint option's foreground seconds per epoch and their share of that fit's own
    (plain) epochs, one value per repeat; the cheapest by median."""
    options = {}
    for name in OPTIONS:
        seconds = [statistics.mean(record["option_seconds"][name]) for record in records]
        shares = [cost / statistics.median(record["epoch_seconds"])
                  for cost, record in zip(seconds, records)]
        options[name] = {"seconds_per_epoch": spread(seconds), "share_of_epoch": spread(shares),
                         "bytes": records[-1]["bytes"][name]}
    writes = [seconds for record in records for seconds in record["background_write_seconds"]]
    return {"options": options,
            "background_write_seconds": spread(writes) if writes else None,
            "cheapest": min(options, key=lambda name:
                            options[name]["seconds_per_epoch"]["median"])}


def throughput(records: dict, train_digits: int, peaks: list[float]) -> dict:
    """Training digits per second of kexp's fits and the GFLOP/s that makes, against the best
    matmul of the run."""
    flops = {}
    for model_name in dict.fromkeys((DEFAULT_MODEL, TORCH_PEER_MODEL)):
        counted = training_flops_per_sample(build_model(model_name, compile=False))
        rates = [train_digits / seconds for seconds in _pooled(records[f"kexp/{model_name}"])]
        achieved = statistics.median(rates) * counted["training"] / 1e9
        flops[model_name] = {**counted, "samples_per_second": spread(rates),
                             "gflops": achieved, "utilisation": achieved / max(peaks)}
    return flops


def torch_peer(records: dict, train_digits: int) -> dict:
    """kexp's plain fit (no augmentation, like the PyTorch loop) over the PyTorch loop."""
    keras_fit, torch_fit = (f"plain_unaugmented/{TORCH_PEER_MODEL}",
                            f"torch/{TORCH_PEER_MODEL}")
    ratio = fit_ratio(records, torch_fit, keras_fit)  # seconds ratio = throughput ratio
    return {**records[torch_fit][-1]["info"], "keras_vs_torch_throughput": ratio,
            "torch_samples_per_second": spread([train_digits / seconds
                                                for seconds in _pooled(records[torch_fit])])}


def summarise(records: dict, train_digits: int, peaks: list[float]) -> dict:
    results = {"epoch_seconds": {key: spread(_pooled(value)) for key, value in records.items()},
               "overhead": overhead(records),
               "checkpoint": checkpoint_costs(records[f"checkpoint_options/{DEFAULT_MODEL}"]),
               "flops": throughput(records, train_digits, peaks),
               "matmul_gflops": spread(peaks),
               "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                              "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    if f"torch/{TORCH_PEER_MODEL}" in records:
        results["torch"] = torch_peer(records, train_digits)
    return results
