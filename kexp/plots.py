"""Kernel grids, weight histograms and before/after/difference figures, from arrays or run folders.

numpy + matplotlib only (no TensorFlow), so `make visualize` starts fast and works on any saved
run. Every grid is one tiled image (one `imshow`, not 32 subplots: 11x faster) and uses one
symmetric colour scale around zero shared by the panels it compares, so a colour means the same
number everywhere; white is zero, red positive, blue negative.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kexp import force_figures, initializers, runs, view_figures
from kexp.analysis import relative_change
# The drawing pieces live in kexp.drawing; scripts and the experiments reach them as plots.X.
from kexp.drawing import (CMAP, DPI, SEPARATOR_COLOUR, draw_mosaic, draw_tiles,  # noqa: F401
                          grid_shape, save_figure, symmetric_limit, tile)


def filter_tiles(kernel: np.ndarray) -> np.ndarray:
    """(kh, kw, c_in, c_out) -> (c_out, kh, kw): one tile per output filter, averaged over input
    channels (for conv1 c_in = 1, so the tiles are the filters themselves)."""
    return np.transpose(kernel.mean(axis=2), (2, 0, 1))


def conv2_mosaic(kernel: np.ndarray, pad: int = 1) -> np.ndarray:
    """The full conv2 kernel as one image: row r, column c is the 3x3 kernel that output filter r
    applies to input channel c."""
    kh, kw, c_in, c_out = kernel.shape
    tiles = np.transpose(kernel, (3, 2, 0, 1)).reshape(c_out * c_in, kh, kw)
    return tile(tiles, c_out, c_in, pad)


def plot_filter_grids(before: np.ndarray, after: np.ndarray, path: Path, layer: str = "conv1",
                      before_title: str = "before training", after_title: str = "after training",
                      suptitle: str = "") -> Path:
    """Before / after / difference grids of a layer's filters (conv1: the 32 3x3 filters)."""
    tiles_before, tiles_after = filter_tiles(before), filter_tiles(after)
    rows, cols = grid_shape(len(tiles_before))
    shared = symmetric_limit(tiles_before, tiles_after)
    difference = tiles_after - tiles_before
    figure = Figure(figsize=(15, 1.3 + 0.62 * rows), layout="constrained")
    axes = figure.subplots(1, 3)
    image = draw_mosaic(axes[0], tile(tiles_before, rows, cols), shared, before_title)
    draw_mosaic(axes[1], tile(tiles_after, rows, cols), shared, after_title)
    figure.colorbar(image, ax=axes[:2], shrink=0.85, label="weight (shared scale)")
    diff_image = draw_mosaic(axes[2], tile(difference, rows, cols), symmetric_limit(difference),
                        "difference (after - before)")
    figure.colorbar(diff_image, ax=axes[2], shrink=0.85, label="change (own scale)")
    averaged = "" if before.shape[2] == 1 else " (each tile: mean over input channels)"
    figure.suptitle(suptitle or f"{layer} filters{averaged}", fontsize=12)
    return save_figure(figure, path)


def plot_conv2_mosaics(before: np.ndarray, after: np.ndarray, path: Path, suptitle: str = ""
                       ) -> Path:
    """The full conv2 kernel before and after: rows = output filters, columns = input channels."""
    shared = symmetric_limit(before, after)
    c_in, c_out = before.shape[2], before.shape[3]
    height = max(6.0, min(16.0, 0.22 * c_out + 2))
    figure = Figure(figsize=(2 * height * c_in / c_out + 2.5, height), layout="constrained")
    axes = figure.subplots(1, 2)
    image = draw_mosaic(axes[0], conv2_mosaic(before), shared, "before training")
    draw_mosaic(axes[1], conv2_mosaic(after), shared, "after training")
    for ax in axes:
        ax.set_xlabel(f"input channel (1..{c_in}, from conv1)")
        ax.set_ylabel(f"output filter (1..{c_out})")
    figure.colorbar(image, ax=axes, shrink=0.7, label="weight (shared scale)")
    figure.suptitle(suptitle or f"conv2 kernel: {c_out} filters x {c_in} input channels, "
                    "each a 3x3 tile", fontsize=12)
    return save_figure(figure, path)


def plot_layer_summary(before: np.ndarray, after: np.ndarray, path: Path, layer: str = "conv2",
                       suptitle: str = "") -> Path:
    """A compact view of a deep layer: each output filter's kernel averaged over its input
    channels (before, after, shared scale) and how much each filter moved."""
    tiles_before, tiles_after = filter_tiles(before), filter_tiles(after)
    rows, cols = grid_shape(len(tiles_before))
    shared = symmetric_limit(tiles_before, tiles_after)
    change = relative_change(before, after)
    figure = Figure(figsize=(15, 1.5 + 0.62 * rows), layout="constrained")
    axes = figure.subplots(1, 3)
    image = draw_mosaic(axes[0], tile(tiles_before, rows, cols), shared, "before (mean over inputs)")
    draw_mosaic(axes[1], tile(tiles_after, rows, cols), shared, "after (mean over inputs)")
    figure.colorbar(image, ax=axes[:2], shrink=0.85, label="weight (shared scale)")
    finite = np.where(np.isfinite(change), change, np.nan)
    axes[2].bar(np.arange(1, len(change) + 1), finite, color="tab:purple")
    axes[2].set_xlabel("output filter")
    axes[2].set_ylabel("||after - before|| / ||before||")
    axes[2].set_title(f"relative change per filter (mean {np.nanmean(finite):.3g})", fontsize=10)
    figure.suptitle(suptitle or f"{layer}: one tile per output filter", fontsize=12)
    return save_figure(figure, path)


def plot_histograms(before: dict[str, np.ndarray], after: dict[str, np.ndarray], path: Path,
                    theories: dict[str, initializers.Theory] | None = None,
                    suptitle: str = "") -> Path:
    """Weight histograms before/after for each conv layer, with the initializer's theoretical
    density and bounds on top."""
    layers = list(before)
    figure = Figure(figsize=(6.5 * len(layers), 4.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(layers)))
    for ax, layer in zip(axes, layers):
        values_before, values_after = before[layer].ravel(), after[layer].ravel()
        low = min(values_before.min(), values_after.min())
        high = max(values_before.max(), values_after.max())
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, int(np.clip(np.sqrt(values_before.size), 12, 60)) + 1)
        ax.hist(values_before, bins=bins, density=True, alpha=0.55, color="tab:blue",
                label="before training")
        ax.hist(values_after, bins=bins, density=True, alpha=0.55, color="tab:orange",
                label="after training")
        theory = (theories or {}).get(layer)
        if theory is not None and theory.has_density:
            span = max(abs(low), abs(high), abs(theory.mean) + 4 * theory.std)
            xs = np.linspace(-span, span, 400)
            ax.plot(xs, theory.pdf(xs), color="black", lw=1.5, label="initializer density")
        if theory is not None and math.isfinite(theory.low) and theory.kind != "constant":
            for bound in (theory.low, theory.high):
                ax.axvline(bound, color="black", ls="--", lw=1)
            ax.plot([], [], color="black", ls="--", label=f"bounds +-{theory.high:.4g}")
        ax.set_title(f"{layer} {before[layer].shape}: {theory.description if theory else ''}",
                     fontsize=9)
        ax.set_xlabel("weight value")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    figure.suptitle(suptitle or "Kernel weights before and after training", fontsize=12)
    return save_figure(figure, path)


def _after_snapshot(run_dir: Path) -> tuple[str, Path]:
    """The newest snapshot, drawn against initial.npz; a run that stopped before its first
    snapshot, or before its first epoch ended, has nothing to draw."""
    sequence = runs.snapshot_sequence(run_dir)
    labels = [label for label, _ in sequence]
    if len(sequence) < 2 or labels[0] != runs.INITIAL:
        raise runs.RunError(f"'{run_dir}' has no kernels before and after training to draw "
                            f"(found in {runs.KERNELS_DIR}/: {', '.join(labels) or 'none'}): it "
                            "stopped before its first snapshot or its first epoch.")
    return sequence[-1]


def _describe(run_dir: Path, recorded: dict, after_label: str) -> str:
    config = recorded["config"]
    status = runs.read_status(run_dir)
    history = runs.read_history(run_dir)
    accuracy = status.get("test_accuracy")
    if accuracy is None and history:
        accuracy = history[-1].get("val_accuracy")
    accuracy_text = f", test accuracy {accuracy:.3f}" if accuracy is not None else ""
    after_text = (f"after {len(history)} epoch(s)" if after_label == runs.FINAL
                  else f"at {after_label}")
    state = "" if status["status"] in (runs.STATUS_RUNNING, runs.STATUS_FINISHED) else (
        f", {status['status'].upper()}")
    return (f"{config['model']}, init {config['init']}, seed {config['seed']}, "
            f"{after_text}{accuracy_text} [data {recorded['data']['source']}{state}]")


def render_run(run_dir: Path) -> list[Path]:
    """(Re)draw every figure of a run from its kernels/ folder; returns the files written."""
    run_dir = Path(run_dir)
    recorded_run = runs.read_config(run_dir)
    recorded = recorded_run["config"]
    after_label, after_path = _after_snapshot(run_dir)
    initial_path = run_dir / runs.KERNELS_DIR / runs.snapshot_name(runs.INITIAL)
    before = runs.load_kernels(initial_path)
    after = runs.load_kernels(after_path, like=before)
    figures = run_dir / runs.FIGURES_DIR
    figures.mkdir(exist_ok=True)
    description = _describe(run_dir, recorded_run, after_label)
    written = []
    if "conv1" in before:
        written.append(plot_filter_grids(
            before["conv1"], after["conv1"], figures / runs.CONV1_FIGURE,
            after_title=f"after training ({after_label})",
            suptitle=f"conv1: the 32 3x3 filters — {description}"))
    if "conv2" in before:
        written.append(plot_conv2_mosaics(before["conv2"], after["conv2"],
                                          figures / runs.CONV2_FIGURE,
                                          suptitle=f"conv2 kernel — {description}"))
        written.append(plot_layer_summary(before["conv2"], after["conv2"],
                                          figures / runs.CONV2_SUMMARY_FIGURE,
                                          suptitle=f"conv2 per output filter — {description}"))
    specs = {"conv1": recorded["init"], "conv2": recorded.get("init_conv2") or recorded["init"]}
    theories = {layer: initializers.theory(specs[layer], before[layer].shape)
                for layer in before if layer in specs}
    written.append(plot_histograms(before, after, figures / runs.HISTOGRAMS_FIGURE, theories,
                                   suptitle=f"Kernel weights — {description}"))
    written += view_figures.render_views(run_dir, initial_path, after_path, description)
    written += force_figures.render_forces(run_dir, initial_path, after_path, description)
    return written
