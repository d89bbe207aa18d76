"""Claims about what training does to the filters of a real model: 2. backpropagation
changes them (and with learning rate 0 nothing changes); 8. the filters are exactly conv1's
trainable weights; 10. do first-layer filters become edge detectors?"""

from __future__ import annotations

import numpy as np

from kexp.config import CONV_LAYERS
from kexp.filters import analysis
from kexp.storage import runs
from kexp.experiments.demos.common import (CONTROL_EPOCHS, CONV1_SHAPE, EPOCHS, LEARNING_RATE,
                                           MODEL, SEED, TRAIN_SAMPLES, DemoContext,
                                           import_keras, new_figure)


def demo_backprop_change(ctx: DemoContext) -> dict:
    """2. Backpropagation changes the filters; with learning rate 0 nothing changes at all.
    Judged on the default recipe trained to the end, next to the demos' 3-epoch run."""
    converged, early = ctx.converged(), ctx.run("glorot_uniform")
    control = ctx.converged(learning_rate=0.0)
    change = {name: {layer: analysis.relative_change(run["before"][layer], run["after"][layer])
                     for layer in CONV_LAYERS}
              for name, run in (("converged", converged), ("early", early),
                                ("control", control))}
    converged_config = runs.read_config(converged["run_dir"])
    figure = new_figure(11, 4)
    ax = figure.subplots()
    filters = np.arange(1, 33)
    bars = (("early", "tab:orange", f"{MODEL}, {EPOCHS} epochs at constant rate "
                                    f"{LEARNING_RATE:g}", early),
            ("converged", "tab:purple", f"{converged_config.model}, the default recipe's "
                                        f"{converged_config.epochs} epochs", converged))
    for offset, (name, colour, label, run) in zip((-0.3, 0.0), bars):
        ax.bar(filters + offset, change[name]["conv1"], width=0.3, color=colour,
               label=f"{label} (test accuracy {run['test_accuracy']:.3f}; mean "
                     f"{change[name]['conv1'].mean():.2f})")
    ax.bar(filters + 0.3, change["control"]["conv1"], width=0.3, color="tab:gray",
           label=f"learning rate 0 (control, the default recipe for {CONTROL_EPOCHS} epoch): "
                 f"max change {change['control']['conv1'].max():g}")
    ax.set_xlabel("conv1 filter")
    ax.set_ylabel("||after - before|| / ||before||")
    ax.set_xticks(filters)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"2. How far backpropagation moved each conv1 filter (seed {SEED}, "
                 f"{TRAIN_SAMPLES} MNIST digits)", fontsize=11)
    ctx.save(figure, "02_backprop_change")
    result = {f"{layer}_change_{statistic}{'' if name == 'converged' else '_' + name}":
              float(getattr(change[name][layer], statistic)())
              for name in ("converged", "early") for layer in CONV_LAYERS
              for statistic in ("mean", "min", "max")}
    result.update(control_change_max=float(max(change["control"][layer].max()
                                               for layer in CONV_LAYERS)),
                  per_filter=change["converged"]["conv1"].tolist(),
                  test_accuracy=converged["test_accuracy"],
                  test_accuracy_early=early["test_accuracy"])
    result["summary"] = (
        f"at convergence conv1 filters moved by {result['conv1_change_mean']:.2f} of their norm "
        f"on average (min {result['conv1_change_min']:.2f}, max "
        f"{result['conv1_change_max']:.2f}), conv2 by {result['conv2_change_mean']:.2f}; after "
        f"{EPOCHS} epochs conv1 {result['conv1_change_mean_early']:.2f} "
        f"({result['conv1_change_min_early']:.2f}-{result['conv1_change_max_early']:.2f}), "
        f"conv2 {result['conv2_change_mean_early']:.2f}; with learning rate 0 the largest change "
        f"is {result['control_change_max']:g}")
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
    keras = import_keras()
    from kexp.network.models import build_model

    keras.utils.set_random_seed(SEED)
    model = build_model(MODEL, seed=SEED)
    report = conv1_weights_report(model)
    report["summary"] = (f"conv1.trainable_weights = {report['conv1_weights']} "
                         f"({report['conv1_parameters']} parameters, the very kernel and bias "
                         f"objects); the model's trainable weights sum to "
                         f"{report['model_trainable_parameters']:,} = count_params()")
    figure = new_figure(9, 3.8)
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
    return report


def demo_edge_detectors(ctx: DemoContext) -> dict:
    """10. Do first-layer filters become edge detectors? Edge-likeness before training, after
    the demos' 3 epochs and after the default recipe's training to the end."""
    from kexp.views import plots

    runs_by_name = {"converged": ctx.converged(), "early": ctx.run("glorot_uniform")}
    scores = {(layer, name, when): analysis.edge_likeness(run[when][layer])
              for layer in CONV_LAYERS for name, run in runs_by_name.items()
              for when in ("before", "after")}
    converged = runs_by_name["converged"]
    before = plots.filter_tiles(converged["before"]["conv1"])
    after = plots.filter_tiles(converged["after"]["conv1"])
    epochs = runs.read_config(converged["run_dir"]).epochs
    figure = new_figure(15, 4.2)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.3])
    limit = plots.symmetric_limit(before, after)
    plots.draw_tiles(axes[0], before, limit, "conv1 before (shared scale)")
    plots.draw_tiles(axes[1], after, limit, f"conv1 after the default recipe's {epochs} epochs")
    order = np.argsort(scores["conv1", "converged", "after"])
    positions = np.arange(32)
    series = ((("converged", "before"), "0.5", "conv1 before"),
              (("early", "after"), "tab:orange", f"conv1 after {EPOCHS} epochs ({MODEL})"),
              (("converged", "after"), "tab:red", f"conv1 after {epochs} epochs"))
    for (name, when), colour, label in series:
        values = scores["conv1", name, when]
        axes[2].plot(positions, values[order], "o", color=colour, ms=4,
                     label=f"{label} (mean {values.mean():.3f})")
    for (name, when), colour, label in series:
        axes[2].axhline(scores["conv2", name, when].mean(), color=colour, ls=":",
                        label=f"{label.replace('conv1', 'conv2')}: mean "
                              f"{scores['conv2', name, when].mean():.3f}")
    axes[2].set_ylim(0, 1)
    axes[2].set_xlabel(f"conv1 filter (sorted by score after {epochs} epochs)")
    axes[2].set_ylabel("edge-likeness: best |cos| with an edge filter")
    axes[2].legend(fontsize=7, loc="lower right")
    figure.suptitle("10. Edge-likeness of each 3x3 filter (1 = an oriented Sobel edge "
                    "detector), before and after training", fontsize=11)
    ctx.save(figure, "10_edge_detectors")
    result = {}
    for name in runs_by_name:
        suffix = "" if name == "converged" else "_early"
        start, end = scores["conv1", name, "before"], scores["conv1", name, "after"]
        result.update({f"{layer}_{when}_mean{suffix}": float(scores[layer, name, when].mean())
                       for layer in CONV_LAYERS for when in ("before", "after")})
        result[f"conv1_filters_more_edge_like{suffix}"] = int((end > start).sum())
        result[f"conv1_top_quarter{suffix}"] = np.sort(end)[-8:][[0, -1]].tolist()
        result[f"conv1_after{suffix}"] = end.tolist()
    result["conv1_before"] = scores["conv1", "converged", "before"].tolist()
    result["summary"] = (
        f"conv1 edge-likeness {result['conv1_before_mean']:.3f} -> "
        f"{result['conv1_after_mean']:.3f} after {epochs} epochs "
        f"({result['conv1_filters_more_edge_like']}/32 filters rose; "
        f"{result['conv1_after_mean_early']:.3f} and "
        f"{result['conv1_filters_more_edge_like_early']}/32 after {EPOCHS}); conv2 "
        f"{result['conv2_before_mean']:.3f} -> {result['conv2_after_mean']:.3f} "
        f"({result['conv2_after_mean_early']:.3f} after {EPOCHS})")
    return result
