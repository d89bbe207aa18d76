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

from kexp.filters.analysis import relative_change
from kexp.network import initializers
from kexp.storage import runs
from kexp.views import drawing, force_figures, view_figures
# The drawing pieces live in kexp.views.drawing; scripts and the experiments reach them as plots.X.
from kexp.views.drawing import (CMAP, COLOUR_BAR_ROOM_INCHES, DPI, SEPARATOR_COLOUR,  # noqa: F401
                                Panel, draw_mosaic, draw_tiles, grid_shape, paint_mosaic,
                                panel_figure, save_figure, symmetric_limit, tile)
from kexp.views.figure_labels import colour_bar, number_tiles
from kexp.views.run_replay import RunReplay

GRID_PANEL_INCHES = 4.0  # width of one filter-grid panel (8 tiles across)
LINE_SPACING = 1.25  # a title's line height over its font size (matplotlib's 1.2, and a gap)


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


def plot_filter_grids(before: np.ndarray, after: np.ndarray, path: Path | None = None,
                      layer: str = "conv1", before_title: str = "before training",
                      after_title: str = "after training", suptitle: str = "") -> Figure:
    """Before / after / difference grids of a layer's filters (conv1: the 32 3x3 filters);
    written to `path` where given (`saved_where_asked`)."""
    tiles_before, tiles_after = filter_tiles(before), filter_tiles(after)
    rows, cols = grid_shape(len(tiles_before))
    shared = symmetric_limit(tiles_before, tiles_after)
    difference = tiles_after - tiles_before
    mosaics = [tile(tiles, rows, cols) for tiles in (tiles_before, tiles_after, difference)]
    averaged = "" if before.shape[2] == 1 else " (each tile: mean over input channels)"
    size = (GRID_PANEL_INCHES, GRID_PANEL_INCHES * mosaics[0].shape[0] / mosaics[0].shape[1])
    figure, [axes] = panel_figure([[Panel(*size), Panel(*size, right=COLOUR_BAR_ROOM_INCHES),
                                    Panel(*size, right=COLOUR_BAR_ROOM_INCHES)]],
                                  suptitle or f"{layer} filters{averaged}")
    image = paint_mosaic(axes[0], mosaics[0], shared, before_title)
    paint_mosaic(axes[1], mosaics[1], shared, after_title)
    colour_bar(figure, image, axes[:2], "weight (shared scale)")
    diff_image = paint_mosaic(axes[2], mosaics[2], symmetric_limit(difference),
                             "difference (after - before)")
    colour_bar(figure, diff_image, axes[2:], "change (own scale)")
    number_tiles(axes[0], len(tiles_before), cols, tiles_before.shape[1:])  # same on all three
    return saved_where_asked(figure, path)


def saved_where_asked(figure: Figure, path: Path | None) -> Figure:
    """`figure`, written to `path` first where one is given: a notebook cell that returns the
    Figure shows it."""
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_conv2_mosaics(before: np.ndarray, after: np.ndarray, path: Path, suptitle: str = ""
                       ) -> Path:
    """The full conv2 kernel before and after: rows = output filters, columns = input channels."""
    shared = symmetric_limit(before, after)
    c_in, c_out = before.shape[2], before.shape[3]
    mosaics = [conv2_mosaic(before), conv2_mosaic(after)]
    height = max(6.0, min(15.0, 0.22 * c_out + 1))
    size = (height * mosaics[0].shape[1] / mosaics[0].shape[0], height)
    figure, [axes] = panel_figure(
        [[Panel(*size, left=0.6), Panel(*size, left=0.6, right=COLOUR_BAR_ROOM_INCHES)]],
        suptitle or f"conv2 kernel: {c_out} filters x {c_in} input channels, each a 3x3 tile",
        below=0.35)
    image = paint_mosaic(axes[0], mosaics[0], shared, "before training")
    paint_mosaic(axes[1], mosaics[1], shared, "after training")
    for ax in axes:
        ax.set_xlabel(f"input channel (0..{c_in - 1}, from conv1)")
        ax.set_ylabel(f"output filter (0..{c_out - 1})", labelpad=12)
    number_rows_and_columns(axes[0], c_out, c_in, before.shape[:2])
    axes[0].set_title("before training", fontsize=10, pad=10)  # above the column numbers
    colour_bar(figure, image, axes, "weight (shared scale)")
    return save_figure(figure, path)


def number_rows_and_columns(ax, rows: int, cols: int, tile_shape: tuple[int, int],
                            every: int = 4) -> None:
    """Number every `every`-th row (output filter) left of a conv2 mosaic and every `every`-th
    column (input channel) above it, as the npz arrays index them."""
    height, width = tile_shape
    for row in range(0, rows, every):
        ax.text(-1, 1 + row * (height + 1) + height / 2 - 0.5, str(row), fontsize=5,
                ha="right", va="center")
    for col in range(0, cols, every):
        ax.text(1 + col * (width + 1) + width / 2 - 0.5, -1, str(col), fontsize=5,
                ha="center", va="bottom")


def plot_layer_summary(before: np.ndarray, after: np.ndarray, path: Path, layer: str = "conv2",
                       suptitle: str = "") -> Path:
    """A compact view of a deep layer: each output filter's kernel averaged over its input
    channels (before, after, shared scale) and how much each filter moved."""
    tiles_before, tiles_after = filter_tiles(before), filter_tiles(after)
    rows, cols = grid_shape(len(tiles_before))
    shared = symmetric_limit(tiles_before, tiles_after)
    change = relative_change(before, after)
    mosaics = [tile(tiles, rows, cols) for tiles in (tiles_before, tiles_after)]
    size = (GRID_PANEL_INCHES * 1.15, GRID_PANEL_INCHES * 1.15 * mosaics[0].shape[0]
            / mosaics[0].shape[1])
    figure, [axes] = panel_figure(
        [[Panel(*size), Panel(*size, right=COLOUR_BAR_ROOM_INCHES + 0.3),
          Panel(4.6, size[1], left=0.5, mosaic=False)]],
        suptitle or f"{layer}: one tile per output filter", below=0.45)
    image = paint_mosaic(axes[0], mosaics[0], shared, "before (mean over inputs)")
    paint_mosaic(axes[1], mosaics[1], shared, "after (mean over inputs)")
    colour_bar(figure, image, axes[:2], "weight (shared scale)")
    number_tiles(axes[0], len(tiles_before), cols, tiles_before.shape[1:])
    finite = np.where(np.isfinite(change), change, np.nan)
    axes[2].bar(np.arange(len(change)), finite, color="tab:purple")
    axes[2].set_xlabel("output filter")
    axes[2].set_ylabel("||after - before|| / ||before||")
    axes[2].set_title(f"relative change per filter (mean {np.nanmean(finite):.3g})", fontsize=10)
    return save_figure(figure, path)


def plot_histograms(before: dict[str, np.ndarray], after: dict[str, np.ndarray],
                    path: Path | None = None,
                    theories: dict[str, initializers.Theory] | None = None,
                    suptitle: str = "") -> Figure:
    """Weight histograms before/after for each conv layer, with the initializer's theoretical
    density and bounds on top; written to `path` where given."""
    layers, theories = list(before), theories or {}
    width, title_points = 5.6, 9
    descriptions = {layer: theory.description for layer, theory in theories.items() if theory}
    titles = [drawing.wrap_to_width(f"{layer} {before[layer].shape}: "
                                    f"{descriptions.get(layer, '')}", width + 0.2, title_points)
              for layer in layers]
    title_lines = max(title.count("\n") + 1 for title in titles)
    figure, [axes] = panel_figure([[Panel(width, 3.2, left=0.6, right=0.1, mosaic=False)]
                                   * len(layers)],
                                  suptitle or "Kernel weights before and after training",
                                  below=0.45,
                                  above=drawing.TITLE_INCHES
                                  + LINE_SPACING * title_points / 72 * (title_lines - 1))
    for ax, layer, title in zip(axes, layers, titles):
        values_before, values_after = before[layer].ravel(), after[layer].ravel()
        low = min(values_before.min(), values_after.min())
        high = max(values_before.max(), values_after.max())
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        bins = np.linspace(low, high, int(np.clip(np.sqrt(values_before.size), 12, 60)) + 1)
        ax.hist(values_before, bins=bins, density=True, alpha=0.55, color="tab:blue",
                label="before training", histtype="stepfilled")
        ax.hist(values_after, bins=bins, density=True, alpha=0.55, color="tab:orange",
                label="after training", histtype="stepfilled")
        theory = theories.get(layer)
        if theory is not None and theory.has_density:
            span = max(abs(low), abs(high), abs(theory.mean) + 4 * theory.std)
            xs = np.linspace(-span, span, 400)
            ax.plot(xs, theory.pdf(xs), color="black", lw=1.5, label="initializer density")
        if theory is not None and math.isfinite(theory.low) and theory.kind != "constant":
            for bound in (theory.low, theory.high):
                ax.axvline(bound, color="black", ls="--", lw=1)
            ax.plot([], [], color="black", ls="--", label=f"bounds +-{theory.high:.4g}")
        ax.set_title(title, fontsize=title_points)
        ax.set_xlabel("weight value")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return saved_where_asked(figure, path)


def _describe(run_dir: Path, after_label: str) -> str:
    config, data_record = runs.read_config(run_dir), runs.read_data_record(run_dir)
    status = runs.read_status(run_dir)
    history = runs.read_history(run_dir)
    accuracy_text = ""
    if status.get("test_accuracy") is not None:
        accuracy_text = f", test accuracy {status['test_accuracy']:.3f}"
    elif history and history[-1].get("val_accuracy") is not None:  # drawn before the test ran
        accuracy_text = f", validation accuracy {history[-1]['val_accuracy']:.3f}"
    after_text = (f"after {len(history)} epoch(s)" if after_label == runs.FINAL
                  else f"at {after_label}")
    state = "" if status["status"] in (runs.STATUS_RUNNING, runs.STATUS_FINISHED) else (
        f", {status['status'].upper()}")
    return (f"{config.model}, init {config.init}, seed {config.seed}, "
            f"{after_text}{accuracy_text} [data {data_record['source']}{state}]")


def render_run(run_dir: Path, replay: RunReplay | None = None) -> list[Path]:
    """(Re)draw every figure of a run from its kernels/ folder; returns the files written.
    `replay`: what the run's page is written from next (each snapshot read once, the layers
    replayed once for both), else one for this call."""
    run_dir = Path(run_dir)
    replay = replay or RunReplay(run_dir)
    config = runs.read_config(run_dir)
    _, (after_label, after_path) = runs.first_and_last_snapshots(run_dir)
    initial_path = run_dir / runs.KERNELS_DIR / runs.snapshot_name(runs.INITIAL)
    before = replay.kernels(initial_path)
    after = replay.kernels(after_path, like=before)
    figures = run_dir / runs.FIGURES_DIR
    figures.mkdir(exist_ok=True)
    description = _describe(run_dir, after_label)
    written = []
    if "conv1" in before:
        written.append(figures / runs.CONV1_FIGURE)
        plot_filter_grids(
            before["conv1"], after["conv1"], written[-1],
            after_title=f"after training ({after_label})",
            suptitle=f"conv1: the 32 3x3 filters — {description}")
    if "conv2" in before:
        written.append(plot_conv2_mosaics(before["conv2"], after["conv2"],
                                          figures / runs.CONV2_FIGURE,
                                          suptitle=f"conv2 kernel — {description}"))
        written.append(plot_layer_summary(before["conv2"], after["conv2"],
                                          figures / runs.CONV2_SUMMARY_FIGURE,
                                          suptitle=f"conv2 per output filter — {description}"))
    specs = {"conv1": config.init, "conv2": config.init_conv2 or config.init}
    theories = {layer: initializers.theory(specs[layer], before[layer].shape)
                for layer in before if layer in specs}
    written.append(figures / runs.HISTOGRAMS_FIGURE)
    plot_histograms(before, after, written[-1], theories,
                    suptitle=f"Kernel weights — {description}")
    # The forces before the views: the views end with the optimal inputs, which the end of a
    # training is still computing on another thread (replay.optimal_inputs waits for them).
    written += force_figures.render_forces(run_dir, initial_path, after_path, description, replay)
    written += view_figures.render_views(run_dir, initial_path, after_path, description, replay)
    return written
