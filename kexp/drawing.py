"""The drawing pieces every kexp figure is built from: one tiled image per grid (one `imshow`,
not dozens of subplots: 11x faster), one colour scale shared by the panels it compares, and an
atomic save. numpy + matplotlib only; kexp.plots and kexp.view_figures draw with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from kexp import atomic

CMAP = "RdBu_r"
SEPARATOR_COLOUR = "0.35"
DPI = 110
# zlib level of the PNGs: 1 saved large mosaics twice as fast as the default 6, for files about
# 15% larger (measured on a run's feature-map figure).
PNG_COMPRESS_LEVEL = 1
# Room of a hand-laid figure, in inches: around it, above each panel (its title), beside a panel
# for a colour bar with its ticks and label, and the colour bar itself.
MARGIN_INCHES = 0.15
SUPTITLE_INCHES = 0.45
TITLE_INCHES = 0.3
COLOUR_BAR_ROOM_INCHES = 1.1
COLOUR_BAR_INCHES = 0.15
TILE_NUMBER_POINTS = 6


def symmetric_limit(*arrays: np.ndarray) -> float:
    """The largest |value| across `arrays`: the shared colour scale is [-limit, +limit]."""
    limit = max((float(np.nanmax(np.abs(a))) for a in arrays if a.size), default=0.0)
    return limit if limit > 0 else 1.0


def tile(tiles: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Lay out `tiles` (n, h, w) on a rows x cols grid, separated by NaN lines (drawn grey)."""
    count, height, width = tiles.shape
    mosaic = np.full((rows * (height + pad) + pad, cols * (width + pad) + pad), np.nan)
    for index in range(count):
        row, col = divmod(index, cols)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        mosaic[top:top + height, left:left + width] = tiles[index]
    return mosaic


def grid_shape(count: int) -> tuple[int, int]:
    """Rows and columns for `count` tiles: 32 -> 4 x 8, 64 -> 8 x 8."""
    cols = 8 if count >= 8 else count
    return math.ceil(count / cols), cols


def draw_mosaic(ax, mosaic: np.ndarray, limit: float, title: str, cmap: str = CMAP,
                low: float | None = None, separator: str = SEPARATOR_COLOUR):
    """Draw a tiled mosaic on one colour scale, symmetric (-limit..limit) unless `low` is given
    (low..limit: activations, pixels); the separators (NaN) take the `separator` colour."""
    ax.set_facecolor(separator)
    image = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap,
                      vmin=-limit if low is None else low, vmax=limit, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def draw_tiles(ax, tiles: np.ndarray, limit: float, title: str, cols: int | None = None):
    """Draw tiles (n, h, w) as one mosaic on the symmetric scale, `cols` per row (default: the
    grid_shape layout, 8 per row)."""
    rows, cols = (grid_shape(len(tiles)) if cols is None
                  else (math.ceil(len(tiles) / cols), cols))
    return draw_mosaic(ax, tile(tiles, rows, cols), limit, title)


@dataclass(frozen=True)
class Panel:
    """One axes of a hand-laid figure: its size in inches and the room kept free left of it
    (its labels) and right of it (a colour bar, the next panel's labels)."""

    width: float
    height: float
    left: float = MARGIN_INCHES
    right: float = MARGIN_INCHES


def panel_figure(rows: list[list[Panel]], suptitle: str, below: float = MARGIN_INCHES
                 ) -> tuple[Figure, list[list]]:
    """A figure laid out by arithmetic: rows of panels, each row centred, with room for the
    title above each panel and `below` under each row (axis labels, colour bars). No layout
    engine: constrained layout drew every figure twice and took a third of its time."""
    row_widths = [sum(panel.left + panel.width + panel.right for panel in row) for row in rows]
    row_heights = [TITLE_INCHES + max(panel.height for panel in row) + below for row in rows]
    width = max(row_widths) + 2 * MARGIN_INCHES
    height = SUPTITLE_INCHES + sum(row_heights) + MARGIN_INCHES
    figure = Figure(figsize=(width, height))
    axes, top = [], height - SUPTITLE_INCHES
    for row, row_width, row_height in zip(rows, row_widths, row_heights):
        x, row_axes = (width - row_width) / 2, []
        for panel in row:
            x += panel.left
            bottom = top - TITLE_INCHES - panel.height
            row_axes.append(figure.add_axes((x / width, bottom / height, panel.width / width,
                                             panel.height / height)))
            x += panel.width + panel.right
        axes.append(row_axes)
        top -= row_height
    figure.suptitle(suptitle, fontsize=12, y=1 - 0.12 / height, va="top")
    return figure, axes


def colour_bar(figure: Figure, image, axes: list, label: str, location: str = "right"):
    """A colour bar for `image` beside the panels `axes` (right: along their height; bottom:
    under them), in the room their layout kept free."""
    boxes = [ax.get_position() for ax in axes]
    x0, x1 = min(box.x0 for box in boxes), max(box.x1 for box in boxes)
    y0, y1 = min(box.y0 for box in boxes), max(box.y1 for box in boxes)
    width, height = figure.get_size_inches()
    if location == "right":
        rect = (x1 + 0.12 / width, y0 + 0.075 * (y1 - y0), COLOUR_BAR_INCHES / width,
                0.85 * (y1 - y0))
    else:
        rect = (x0 + 0.2 * (x1 - x0), y0 - 0.3 / height, 0.6 * (x1 - x0),
                COLOUR_BAR_INCHES / height)
    return figure.colorbar(image, cax=figure.add_axes(rect), label=label,
                           orientation="vertical" if location == "right" else "horizontal")


def number_tiles(ax, count: int, cols: int, tile_shape: tuple[int, int], pad: int = 1,
                 colour: str = "white", inside: bool = False,
                 offset: tuple[int, int] = (0, 0)) -> None:
    """Print each tile's index (its filter's index in the npz arrays) at its top-left corner:
    in the separator above it, or `inside` the tile where the separators are thin. `offset`:
    the (row, column) in the drawn image where the tiled grid starts."""
    height, width = tile_shape
    for index in range(count):
        row, col = divmod(index, cols)
        top = offset[0] + pad + row * (height + pad)
        left = offset[1] + pad + col * (width + pad)
        ax.text(left - 0.5, top - 0.5 if inside else top - 0.5 - pad / 2, str(index),
                color=colour, fontsize=TILE_NUMBER_POINTS, ha="left",
                va="top" if inside else "center", clip_on=False)


def save_figure(figure: Figure, path: Path, palette_colours: int | None = None) -> Path:
    """Save `figure` through a temporary sibling and a rename: never a half-written PNG. With
    `palette_colours` the PNG is quantized to that many colours: a third of the size or less and
    no visible change for flat-coloured plots (the README's copies stay small)."""
    path = Path(path)
    file_format = path.suffix.lstrip(".") or "png"
    options = {"pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}} if file_format == "png" else {}

    def write(temporary):
        figure.savefig(temporary, dpi=DPI, format=file_format, **options)
        if palette_colours:
            with Image.open(temporary) as image:
                quantized = image.convert("RGB").quantize(palette_colours)
            quantized.save(temporary, format="png", optimize=True)

    return atomic.write_path_atomic(path, write)
