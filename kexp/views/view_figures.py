"""The figures of what each filter responds to, before and after training: feature maps of one
test digit per class, the strongest patches of the probe digits, and the optimal inputs.

numpy + matplotlib only: the maps and patches are replayed from the run's snapshots
(kexp.probes.filter_views), the optimal inputs read from views/optimal_inputs.npz. Every panel is
one mosaic (one `imshow`), and before and after share one colour scale per layer, so a colour
means the same activation or pixel value in both.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from kexp import shell_commands
from kexp.filters.analysis import single_orientation_fraction
from kexp.probes import filter_views
from kexp.storage import runs
from kexp.views import drawing, figure_labels
from kexp.views.run_replay import RunReplay

ACTIVATION_CMAP = "magma"  # ReLU maps are >= 0: black is 0, bright is strong
PIXEL_CMAP = "Greys"  # input pixels as MNIST draws them: white paper, black ink
LIGHT_SEPARATOR = "white"
PATCH_SEPARATOR = "#c6dbef"  # light blue: never mistaken for ink; also a dead filter's blocks
TILE_NUMBER_COLOUR = "tab:red"  # filter numbers on ink-on-paper tiles
CLIP_PERCENTILE = 99.9  # colour scales end here, so one hot pixel does not darken the rest
MAPS_PER_ROW = 16
PIXELS_PER_INCH = 55  # mosaic pixels per inch of figure: 2 screen pixels per map pixel at DPI 110
WHEN = ("before", "after")


def blocks(groups: np.ndarray, cols: int, height: int | None = None) -> np.ndarray:
    """(g, n, h, w) -> (g, H, W): each group's n tiles as one small mosaic, `cols` per row,
    padded with NaN to `height` rows so mosaics of different layers line up."""
    count = groups.shape[1]
    cols = min(cols, count)
    mosaics = np.stack([drawing.tile(group, math.ceil(count / cols), cols) for group in groups])
    extra = max(0, (height or 0) - mosaics.shape[1])
    return np.pad(mosaics, ((0, 0), (extra // 2, extra - extra // 2), (0, 0)),
                  constant_values=np.nan)


def layer_limit(*arrays: np.ndarray, symmetric: bool = False) -> float:
    """The top of one layer's colour scale: the CLIP_PERCENTILE of the values (of |values| where
    `symmetric`) pooled over before and after."""
    pooled = np.concatenate([np.abs(a).ravel() if symmetric else a.ravel() for a in arrays])
    limit = float(np.nanpercentile(pooled, CLIP_PERCENTILE)) if pooled.size else 0.0
    return limit if limit > 0 else 1.0


def plot_feature_maps(digits: np.ndarray, maps: dict[str, dict[str, np.ndarray]], path: Path,
                      suptitle: str = "") -> Path:
    """One row per digit: the digit, then each layer's maps before and after training.
    digits (n, 28, 28); maps[when][layer] (n, h, w, filters)."""
    layers = list(maps["after"])
    groups = {(when, layer): np.moveaxis(maps[when][layer], -1, 1)
              for when in WHEN for layer in layers}
    height = max(math.ceil(g.shape[1] / MAPS_PER_ROW) * (g.shape[2] + 1) + 1
                 for g in groups.values())
    panels = [("digit", blocks(digits[:, None], 1, height), PIXEL_CMAP, 1.0)]
    for layer in layers:
        limit = layer_limit(groups["before", layer], groups["after", layer])
        for when in WHEN:
            count = groups[when, layer].shape[1]
            panels.append((f"{layer}: {count} maps {when} training",
                           blocks(groups[when, layer], MAPS_PER_ROW, height),
                           ACTIVATION_CMAP, limit))
    mosaics = [drawing.tile(mosaic, len(digits), 1, pad=3) for _, mosaic, _, _ in panels]
    figure, [axes] = drawing.panel_figure(
        [[drawing.Panel(mosaic.shape[1] / PIXELS_PER_INCH, mosaic.shape[0] / PIXELS_PER_INCH,
                       right=0.05)
          for mosaic in mosaics]],
        suptitle or "Feature maps (ReLU applied) of one test digit per class", below=0.75)
    for index, (ax, (title, _, cmap, limit), mosaic) in enumerate(zip(axes, panels, mosaics)):
        image = drawing.paint_mosaic(ax, mosaic, limit, title, cmap=cmap, low=0.0,
                                    separator=LIGHT_SEPARATOR)
        if index and index % 2 == 0:  # after a layer's "after" panel: one bar for the pair
            figure_labels.colour_bar(figure, image, axes[index - 1:index + 1],
                                     f"{title.split(':')[0]} activation (before and after; "
                                     f"top: {CLIP_PERCENTILE}th percentile)", location="bottom")
    return drawing.save_figure(figure, path)


def two_column_figure(mosaic_shapes: list[tuple[int, int]], column_inches: float,
                      suptitle: str, right: float = drawing.MARGIN_INCHES):
    """A figure of one row per mosaic shape (height, width) and two columns (before, after),
    each row as tall as its mosaic drawn `column_inches` wide: every panel fills its column.
    `right`: the room right of the second column (a colour bar)."""
    return drawing.panel_figure(
        [[drawing.Panel(column_inches, column_inches * height / width),
          drawing.Panel(column_inches, column_inches * height / width, right=right)]
         for height, width in mosaic_shapes], suptitle)


def plot_top_patches(patches: dict[str, dict[str, filter_views.TopPatches]], path: Path,
                     suptitle: str = "") -> Path:
    """Per layer, before and after: for each filter a block of its strongest patches (one per
    digit, strongest first, row by row), the blocks in filter order, 8 to a row. A patch that
    does not excite the filter at all (output 0) stays empty: an empty block is a dead filter."""
    mosaics = {}
    for layer, after in patches["after"].items():
        k = after.patches.shape[1]
        for when in WHEN:
            found = patches[when][layer]
            shown = np.where((found.scores > 0)[..., None, None], found.patches[..., 0], np.nan)
            per_filter = blocks(shown, math.ceil(math.sqrt(k)))
            mosaics[when, layer] = drawing.tile(per_filter, *drawing.grid_shape(len(per_filter)),
                                                pad=2)
    layers = list(patches["after"])
    figure, axes = two_column_figure([mosaics["after", layer].shape for layer in layers], 6.5,
                                     suptitle or "Strongest patches: what excites each filter "
                                     "most")
    for layer, row_axes in zip(layers, axes):
        filters, k, size = patches["after"][layer].patches.shape[:3]
        side = math.ceil(math.sqrt(k))
        block_shape = (math.ceil(k / side) * (size + 1) + 1, side * (size + 1) + 1)
        for ax, when in zip(row_axes, WHEN):
            drawing.paint_mosaic(ax, mosaics[when, layer], 1.0,
                                f"{layer} {when} training: {filters} filters, the {k} strongest "
                                f"{size}x{size} patches of each", cmap=PIXEL_CMAP, low=0.0,
                                separator=PATCH_SEPARATOR)
        figure_labels.number_tiles(row_axes[0], filters, drawing.grid_shape(filters)[1],
                                   block_shape, pad=2, colour=TILE_NUMBER_COLOUR, inside=True)
    return drawing.save_figure(figure, path)


def plot_optimal_inputs(found: dict[str, dict[str, dict[str, np.ndarray]]], path: Path,
                        suptitle: str = "") -> Path:
    """Per layer, before and after: each filter's optimal input, drawn like the digits (black
    ink on white) when it has no negative pixels, else red positive and blue negative, with the
    mean activation it reaches and its single-orientation fraction averaged in the title."""
    layers = list(found["after"])
    images = {(when, layer): found[when][layer]["images"][..., 0] for when in WHEN
              for layer in layers}
    shapes = [drawing.tile(images["after", layer], *drawing.grid_shape(
        len(images["after", layer]))).shape for layer in layers]
    figure, axes = two_column_figure(shapes, 7.0, suptitle or "Optimal inputs: the image that "
                                     "maximises each filter's mean activation",
                                     right=drawing.COLOUR_BAR_ROOM_INCHES)
    for layer, row_axes in zip(layers, axes):
        pair = (images["before", layer], images["after", layer])
        ink = min(tiles.min() for tiles in pair) >= 0  # kexp's: ink on paper, drawn as digits
        limit = layer_limit(*pair, symmetric=True)
        for ax, when in zip(row_axes, WHEN):
            tiles = images[when, layer]
            oriented = single_orientation_fraction(tiles).mean()
            activation = found[when][layer]["activation"].mean()
            cols = drawing.grid_shape(len(tiles))[1]
            image = drawing.paint_mosaic(
                ax, drawing.tile(tiles, math.ceil(len(tiles) / cols), cols), limit,
                f"{layer} {when} training: mean activation {activation:.3g}, "
                f"single-orientation fraction {oriented:.2f}", cmap=PIXEL_CMAP if ink else
                drawing.CMAP, low=0.0 if ink else None, separator=PATCH_SEPARATOR)
            if when == WHEN[0]:  # the after panel holds the same filters in the same places
                figure_labels.number_tiles(ax, len(tiles), cols, tiles.shape[1:],
                                           colour=TILE_NUMBER_COLOUR, inside=True)
        figure_labels.colour_bar(figure, image, row_axes,
                                 f"{layer}: input pixel (before and after)")
    return drawing.save_figure(figure, path)


def run_patches_and_maps(run_dir: Path, snapshots: dict[str, Path],
                         replay: RunReplay | None = None):
    """The probe digits' labels and images, and per state ("before", "after": snapshot paths)
    every conv layer's maps and strongest patches (read-only arrays, replayed once per
    `replay`); None when the run lacks what they need (probe digits, or biases in its
    snapshots: runs trained before kexp kept them)."""
    if not filter_views.has_probe_digits(run_dir):
        return None
    replay = replay or RunReplay(run_dir)
    images, labels = replay.probe_digits()
    maps, patches = {}, {}
    for when, snapshot in snapshots.items():
        maps[when] = replay.maps(snapshot)
        if maps[when] is None:
            return None
        patches[when] = replay.patches(snapshot)
    return images, labels, maps, patches


def render_views(run_dir: Path, before: Path, after: Path, description: str,
                 replay: RunReplay | None = None) -> list[Path]:
    """Draw the run's feature maps, strongest patches and optimal inputs (those it has the
    files for) between snapshot files `before` and `after`, from `replay` where given (what
    the run's page reads again); returns the files written."""
    run_dir = Path(run_dir)
    replay = replay or RunReplay(run_dir)
    figures = run_dir / runs.FIGURES_DIR
    written = []
    computed = run_patches_and_maps(run_dir, {"before": before, "after": after}, replay)
    if computed is not None:
        images, labels, maps, patches = computed
        shown = filter_views.first_of_each_class(labels)
        written.append(plot_feature_maps(
            images[shown, ..., 0], {when: {layer: layer_maps[shown] for layer, layer_maps
                                           in maps[when].items()} for when in maps},
            figures / runs.FEATURE_MAPS_FIGURE,
            f"Feature maps of one test digit per class — {description}"))
        written.append(plot_top_patches(
            patches, figures / runs.TOP_PATCHES_FIGURE,
            f"Strongest patches of {len(images)} test digits — {description}"))
    found = replay.optimal_inputs()
    if found:
        written.append(plot_optimal_inputs(found, figures / runs.OPTIMAL_INPUTS_FIGURE,
                                           f"Optimal inputs — {description}"))
    else:
        print(f"kexp: note: {runs.OPTIMAL_INPUTS_FIGURE} not drawn for {run_dir.name}: it has no "
              f"{runs.VIEWS_DIR}/{runs.OPTIMAL_INPUTS_FILE}; compute it with: "
              f"{shell_commands.explain_command(run_dir)}", file=sys.stderr, flush=True)
    return written
