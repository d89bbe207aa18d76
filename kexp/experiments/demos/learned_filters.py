"""Seed claims about what training does to the filters of a real model: 2. backpropagation
changes them (and with learning rate 0 nothing changes); 8. the filters are exactly conv1's
trainable weights; 10. do first-layer filters become edge detectors?"""

from __future__ import annotations

import numpy as np

from kexp import analysis
from kexp.experiments.demos.common import (CONV1_SHAPE, EPOCHS, LEARNING_RATE, MODEL, SEED,
                                           TRAIN_SAMPLES, DemoContext, import_keras,
                                           new_figure)


def demo_backprop_change(ctx: DemoContext) -> dict:
    """2. Backpropagation changes the filters; with learning rate 0 nothing changes at all."""
    trained = ctx.run("glorot_uniform")
    control = ctx.run("glorot_uniform", learning_rate=0.0)
    change = {name: analysis.relative_change(run["before"]["conv1"], run["after"]["conv1"])
              for name, run in (("trained", trained), ("control", control))}
    conv2_change = analysis.relative_change(trained["before"]["conv2"], trained["after"]["conv2"])
    figure = new_figure(11, 4)
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
    from kexp.models import build_model

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
    """10. Do first-layer filters become edge detectors? Edge-likeness before and after."""
    from kexp import plots

    run = ctx.run("glorot_uniform")
    scores = {(layer, when): analysis.edge_likeness(run[when][layer])
              for layer in ("conv1", "conv2") for when in ("before", "after")}
    before = plots.filter_tiles(run["before"]["conv1"])
    after = plots.filter_tiles(run["after"]["conv1"])
    limit = plots.symmetric_limit(before, after)
    figure = new_figure(15, 4.2)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.3])
    plots.draw_tiles(axes[0], before, limit, "conv1 before (shared scale)")
    plots.draw_tiles(axes[1], after, limit, f"conv1 after {EPOCHS} epochs")
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
