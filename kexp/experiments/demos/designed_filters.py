"""Claims about where filter numbers could come from instead of a random draw: 5. patches
cut from the training images; 6. hand-designed filters (Sobel, Laplacian, Gaussian, peak), frozen
or trainable, against filters learned from random."""

from __future__ import annotations

import numpy as np

from kexp.filters import analysis
from kexp.experiments.demos.common import (CONV1_SHAPE, EPOCHS, MODEL, TEST_SAMPLES,
                                           TRAIN_SAMPLES, DemoContext, draw_matrix, new_figure)

DESIGNED_FILTERS = ("sobel_x", "sobel_y", "laplacian", "gaussian", "peak")


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
    from kexp.views import plots

    setups = [("image_patches", ()), ("glorot_uniform", ()), ("image_patches", ("conv1",)),
              ("glorot_uniform", ("conv1",))]
    runs = {setup: ctx.run(*setup) for setup in setups}
    patches = plots.filter_tiles(runs[setups[0]]["before"]["conv1"])
    random = plots.filter_tiles(runs[setups[1]]["before"]["conv1"])
    figure = new_figure(15, 3.6)
    axes = figure.subplots(1, 3, width_ratios=[1, 1, 1.1])
    image = plots.draw_tiles(axes[0], patches, plots.symmetric_limit(patches),
                             "image_patches: 32 patches of training digits\n(zero mean, norm 1)")
    figure.colorbar(image, ax=axes[0], shrink=0.7)
    image = plots.draw_tiles(axes[1], random, plots.symmetric_limit(random),
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
    from kexp.network import keras_initializers
    from kexp.views import plots

    setups = ([("glorot_uniform", ())] + [(name, ("conv1",)) for name in DESIGNED_FILTERS]
              + [("glorot_uniform", ("conv1",))] + [(name, ()) for name in DESIGNED_FILTERS])
    runs = {setup: ctx.run(*setup) for setup in setups}
    labels = [f"{init} ({'frozen' if freeze else 'trainable'})" for init, freeze in setups]
    accuracies = [runs[setup]["test_accuracy"] for setup in setups]
    colours = ["tab:blue"] + ["tab:orange"] * len(DESIGNED_FILTERS) + ["0.6"] + \
        ["tab:green"] * len(DESIGNED_FILTERS)
    bases = np.stack([keras_initializers.DesignedFilters(name).base() for name in
                      DESIGNED_FILTERS])
    bases = bases / np.linalg.norm(bases.reshape(len(bases), -1), axis=1)[:, None, None]
    figure = new_figure(14, 5.2)
    grid = figure.add_gridspec(2, 2, width_ratios=[1, 1.4], height_ratios=[1, 1])
    limit = float(np.abs(bases).max())
    for index, name in enumerate(DESIGNED_FILTERS):
        sub = grid[0, 0].subgridspec(1, len(DESIGNED_FILTERS))[0, index]
        draw_matrix(figure.add_subplot(sub), bases[index], limit, name)
    sobel = keras_initializers.tile_filters(bases[0], CONV1_SHAPE, 1.0)
    plots.draw_tiles(figure.add_subplot(grid[1, 0]), plots.filter_tiles(sobel), limit,
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
