"""Claim 15: "the first layer filters basically all act as simple edge detectors, while the
second layer filters are more complex". A 3x3x32 conv2 kernel cannot be read, so kexp reads what
each filter responds to: its optimal input (the ink pattern of a digit's brightness that excites
it most, computed at the end of every training run), scored by how much of the pattern's energy
lies in one band of orientations (kexp.filters.analysis.single_orientation_fraction)."""

from __future__ import annotations

import numpy as np

from kexp.config import CONV_LAYERS
from kexp.experiments.demos.common import EPOCHS, MODEL, SEED, DemoContext, new_figure
from kexp.filters import analysis
from kexp.probes import filter_views
from kexp.storage import runs

LAYERS = CONV_LAYERS
WHEN = ("before", "after")


def reference_patterns(side: int = 28) -> dict[str, np.ndarray]:
    """Patterns whose single-orientation fraction says what a value means: a straight grating
    and a straight stroke (one edge orientation), a cross (two), a ring and noise (every one)."""
    rows, cols = np.mgrid[:side, :side].astype(float)
    angle = np.radians(30)
    stroke = np.zeros((side, side))
    stroke[side // 2 - 1:side // 2 + 1, 4:side - 4] = 1.0
    radius = np.hypot(rows - side / 2 + 0.5, cols - side / 2 + 0.5)
    return {"grating": 0.5 + 0.5 * np.cos(0.9 * (np.cos(angle) * cols + np.sin(angle) * rows)),
            "stroke": stroke, "cross": np.maximum(stroke, stroke.T),
            "ring": (np.abs(radius - side / 3) < 1.2).astype(float),
            "noise": np.random.default_rng(0).random((side, side))}


def complexity_numbers(optimal: dict) -> dict:
    """Per layer and state: how many filters are brightness detectors (their optimal input is
    nearly uniform ink: analysis.pattern_fraction below the threshold, where an orientation
    means nothing) and the single-orientation fraction of the others (mean and per filter).
    `optimal`: filter_views.read_optimal_inputs of a run."""
    numbers = {}
    for layer in LAYERS:
        for when in WHEN:
            images = optimal[when][layer]["images"][..., 0]
            patterned = analysis.pattern_fraction(images) >= analysis.BRIGHTNESS_DETECTOR_BELOW
            oriented = analysis.single_orientation_fraction(images)
            numbers[f"{layer}_{when}"] = {
                "filters": len(images), "brightness_detectors": int((~patterned).sum()),
                "single_orientation_mean": float(oriented[patterned].mean()),
                "single_orientation": oriented.tolist(), "patterned": patterned.tolist()}
    return numbers


def _ordered(images: np.ndarray, entry: dict) -> np.ndarray:
    """Patterned filters, most single-oriented first, then the brightness detectors."""
    score = np.where(entry["patterned"], entry["single_orientation"], -1.0)
    return images[np.argsort(-score, kind="stable")]


def demo_deeper_filters(ctx: DemoContext) -> dict:
    """15. Second-layer filters are more complex than first-layer edge detectors: the
    single-orientation fraction of every filter's optimal input, conv1 vs conv2, before
    training, after the demos' 3 epochs and after the default recipe's training to the end."""
    from kexp.views import plots, view_figures  # matplotlib: only when a demo draws

    run, early_run = ctx.converged(), ctx.run("glorot_uniform")
    optimal = filter_views.read_optimal_inputs(run["run_dir"])
    numbers = complexity_numbers(optimal)
    early = complexity_numbers(filter_views.read_optimal_inputs(early_run["run_dir"]))
    epochs = runs.read_config(run["run_dir"]).epochs
    references = {name: float(analysis.single_orientation_fraction(pattern[None])[0])
                  for name, pattern in reference_patterns().items()}
    columns = [(f"{layer} {label}", entry, colour) for layer in LAYERS for label, entry, colour in (
        ("before", numbers[f"{layer}_before"], "0.5"),
        (f"after {EPOCHS} epochs", early[f"{layer}_after"], "tab:orange"),
        (f"after {epochs} epochs", numbers[f"{layer}_after"], "tab:red"))]
    figure = new_figure(18, 6.4)
    axes = figure.subplots(1, 3, width_ratios=[1.6, 1, 1])
    rng = np.random.default_rng(0)
    for position, (_, entry, colour) in enumerate(columns):
        values = np.array(entry["single_orientation"])[entry["patterned"]]
        axes[0].plot(position + rng.uniform(-0.18, 0.18, len(values)), values, "o", ms=4,
                     alpha=0.7, color=colour)
        axes[0].plot([position - 0.3, position + 0.3], [values.mean()] * 2, color="black", lw=2)
    for name, value in references.items():
        axes[0].axhline(value, color="tab:blue", ls=":", lw=1)
        axes[0].text(len(columns) - 0.55, value, name, color="tab:blue", fontsize=8,
                     va="center")
    axes[0].set_xticks(range(len(columns)), [
        f"{label.replace(' after', chr(10) + 'after')}\nmean "
        f"{entry['single_orientation_mean']:.2f}\n+ {entry['brightness_detectors']}/"
        f"{entry['filters']} bright-\nness detectors" for label, entry, _ in columns],
        fontsize=7)
    axes[0].set_xlim(-0.5, len(columns) + 0.1)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("single-orientation fraction of the optimal input")
    axes[0].set_title("one dot per filter (1 = one oriented edge explains its pattern;\n"
                      "brightness detectors are counted below, not plotted)", fontsize=10)
    for ax, layer in zip(axes[1:], LAYERS):
        images = _ordered(optimal["after"][layer]["images"][..., 0], numbers[f"{layer}_after"])
        plots.draw_mosaic(ax, plots.tile(images, *plots.grid_shape(len(images))),
                          view_figures.layer_limit(images), f"{layer} after {epochs} epochs: "
                          "optimal inputs, most single-oriented first,\nbrightness detectors "
                          "last", cmap=view_figures.PIXEL_CMAP, low=0.0,
                          separator=view_figures.PATCH_SEPARATOR)
    figure.suptitle(f"15. How complex are conv1's and conv2's filters? (glorot_uniform, seed "
                    f"{SEED}: {MODEL} after {EPOCHS} epochs, the default recipe after {epochs}; "
                    "optimal inputs found by gradient ascent)", fontsize=11)
    ctx.save(figure, "15_deeper_filters")
    means = {key: entry["single_orientation_mean"] for key, entry in numbers.items()}
    bright = {key: entry["brightness_detectors"] for key, entry in numbers.items()}
    return {"numbers": numbers, "numbers_early": early, "references": references,
            "run_dir": run["run_dir"],
            "summary": (f"single-orientation fraction (1 = one oriented edge) of the optimal "
                        f"inputs after {epochs} epochs: conv1 {means['conv1_before']:.2f} -> "
                        f"{means['conv1_after']:.2f} ({bright['conv1_before']} -> "
                        f"{bright['conv1_after']} of 32 filters brightness detectors), "
                        f"conv2 {means['conv2_before']:.2f} -> {means['conv2_after']:.2f}; "
                        f"after {EPOCHS} epochs conv1 "
                        f"{early['conv1_after']['single_orientation_mean']:.2f} "
                        f"({early['conv1_after']['brightness_detectors']} brightness), conv2 "
                        f"{early['conv2_after']['single_orientation_mean']:.2f}; a straight "
                        f"grating scores {references['grating']:.2f}, a cross "
                        f"{references['cross']:.2f}, noise {references['noise']:.2f}")}
