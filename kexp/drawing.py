"""The drawing pieces every kexp figure is built from: one tiled image per grid (one `imshow`,
not dozens of subplots: 11x faster), one colour scale shared by the panels it compares, and an
atomic save. numpy + matplotlib only; kexp.plots and kexp.view_figures draw with them.
"""

from __future__ import annotations

import math
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
