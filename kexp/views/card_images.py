"""The small pictures of the run page's cards: arrays coloured through a matplotlib colour map,
shown enlarged by whole pixels (the browser's pixelated scaling: a weight stays one flat
square) and encoded as PNG data: URIs with PIL. No figure and no axes: a hundred cards'
pictures take a fraction of a second, and the page holds them, so it needs no other file.
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image

WEIGHT_CMAP = "RdBu_r"  # white zero, red positive, blue negative (the figures' scale)
ACTIVATION_CMAP = "magma"  # ReLU outputs: black 0, bright strong
PIXEL_CMAP = "Greys"  # MNIST as drawn: white paper, black ink
SEPARATOR_RGB = (150, 150, 150)  # grid lines between tiles (NaN in a mosaic)
EMPTY_RGB = (198, 219, 239)  # light blue: no patch (the filter never answered)
PNG_COMPRESS_LEVEL = 3  # the pictures are tiny: deflate's level hardly changes their size


def coloured(array: np.ndarray, cmap: str, low: float, high: float,
             blank: tuple[int, int, int] = SEPARATOR_RGB) -> np.ndarray:
    """(h, w) values -> (h, w, 3) uint8 colours of `cmap` from `low` to `high` (clipped); NaN
    takes the `blank` colour."""
    values = np.asarray(array, dtype=np.float64)
    span = high - low if high > low else 1.0
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / span, 0.0, 1.0)
    table = colour_table(cmap)
    rgb = table[np.rint(scaled * (len(table) - 1)).astype(np.intp)]
    rgb[np.isnan(values)] = blank
    return rgb


@functools.lru_cache(maxsize=8)
def colour_table(cmap: str) -> np.ndarray:
    """The 256 colours of `cmap` as uint8 RGB (matplotlib's registry hands out a new copy of a
    colour map, with its table built again, at every lookup)."""
    return colormaps[cmap](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]


def weights(array: np.ndarray, limit: float) -> np.ndarray:
    """Weights on the symmetric scale -limit..limit."""
    return coloured(array, WEIGHT_CMAP, -limit, limit)


def css_colour(value: float, limit: float, cmap: str = WEIGHT_CMAP) -> str:
    """The colour of one weight as CSS, for a number printed in a coloured cell."""
    red, green, blue = coloured(np.array([[value]]), cmap, -limit, limit)[0, 0]
    return f"#{red:02x}{green:02x}{blue:02x}"


def gradient_css(cmap: str, low: float = 0.0, high: float = 1.0, stops: int = 9) -> str:
    """A CSS linear-gradient through `cmap`, for a colour bar drawn without an image."""
    colours = colormaps[cmap](np.linspace(low, high, stops), bytes=True)[:, :3]
    return "linear-gradient(to right, " + ", ".join(
        f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colours) + ")"


def side_by_side(*mosaics: np.ndarray, gap: int = 2) -> np.ndarray:
    """RGB mosaics (h, w, 3) in one row, top-aligned, `gap` white pixels apart."""
    height = max(mosaic.shape[0] for mosaic in mosaics)
    parts = []
    for index, mosaic in enumerate(mosaics):
        padded = np.full((height, mosaic.shape[1], 3), 255, dtype=np.uint8)
        padded[:mosaic.shape[0]] = mosaic
        parts.append(padded)
        if index < len(mosaics) - 1:
            parts.append(np.full((height, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(parts, axis=1)


def stacked(*rows: np.ndarray, gap: int = 2) -> np.ndarray:
    """RGB mosaics one above the other, left-aligned, `gap` white pixels apart."""
    width = max(row.shape[1] for row in rows)
    parts = []
    for index, row in enumerate(rows):
        padded = np.full((row.shape[0], width, 3), 255, dtype=np.uint8)
        padded[:, :row.shape[1]] = row
        parts.append(padded)
        if index < len(rows) - 1:
            parts.append(np.full((gap, width, 3), 255, dtype=np.uint8))
    return np.concatenate(parts, axis=0)


@dataclass(frozen=True)
class Picture:
    """A PNG data: URI and the size to show it at: its pixels enlarged by the page (the
    browser's pixelated scaling), not in the file, which stays a few hundred bytes."""

    uri: str
    width: int
    height: int


def png(rgb: np.ndarray, scale: int = 1) -> Picture:
    """An RGB image (h, w, 3), shown `scale` screen pixels per pixel."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return Picture("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
                   rgb.shape[1] * scale, rgb.shape[0] * scale)


def scale_for(width: int, target: int, largest: int = 12) -> int:
    """The whole-pixel enlargement that brings `width` pixels nearest to `target`."""
    return int(np.clip(round(target / max(width, 1)), 1, largest))
