"""What kexp prints on its figures: colour bars with the ticks matplotlib's own axis would get,
and text stamped straight into a mosaic's pixels (the filter numbers), measured and drawn as Agg
draws text. A figure of hand-laid panels (kexp.views.drawing) has no Axes to hang these on.
"""

from __future__ import annotations

import functools

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D

from kexp.views.drawing import (AXIS_LABEL_POINTS, COLOUR_BAR_INCHES, DPI, LABEL_PAD_POINTS,
                                LINE_POINTS, TICK_LABEL_POINTS, TICK_PAD_POINTS, TICK_POINTS,
                                MosaicPanel)

TILE_NUMBER_POINTS = 6


@functools.lru_cache(maxsize=1024)
def text_stamp(text: str, points: float, ha: str, va: str) -> tuple[np.ndarray, int, int]:
    """`text` in matplotlib's default font as Agg draws it at DPI: its coverage (h, w) in
    [0, 1] and the row and column of the point it is aligned on, placed as `ax.text` places
    a line (ha: left, center, right; va: top, center, baseline, bottom)."""
    font = FontProperties(size=points)
    width, height, descent = text_renderer().get_text_width_height_descent(text, font, False)
    _, line_height, line_descent = text_renderer().get_text_width_height_descent("lp", font,
                                                                                 False)
    height, descent = max(height, line_height), max(descent, line_descent)
    margin = 4
    renderer = RendererAgg(int(width) + 2 * margin, int(height) + 2 * margin, DPI)
    baseline = margin + height - descent  # rows count downwards
    renderer.draw_text(renderer.new_gc(), margin, baseline, text, font, 0)
    coverage = np.asarray(renderer.buffer_rgba())[..., 3] / 255.0
    anchor_row = baseline - {"top": height - descent, "center": height / 2 - descent,
                             "baseline": 0.0, "bottom": -descent}[va]
    anchor_col = margin + {"left": 0.0, "center": width / 2, "right": width}[ha]
    rows, cols = np.flatnonzero(coverage.any(axis=1)), np.flatnonzero(coverage.any(axis=0))
    return (coverage[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], round(anchor_row) - rows[0],
            round(anchor_col) - cols[0])


@functools.lru_cache(maxsize=1)
def text_renderer() -> RendererAgg:
    """A renderer at DPI that only measures text."""
    return RendererAgg(1, 1, DPI)


def colour_bar(figure: Figure, scale: ScalarMappable, axes: list, label: str,
               location: str = "right", ticks: list[float] | None = None,
               length: float | None = None) -> None:
    """A colour bar for `scale` (what `paint_mosaic` returns) beside the panels `axes` (right:
    along their height; bottom: under them), in the room their layout kept free, `length`
    times as long as they are (default 0.85 right, 0.6 bottom). Drawn as matplotlib's colour
    bar looks (its tick places and labels, or `ticks` labelled "%.2g") from an image, lines and
    text, without a colour-bar axes: that axes cost a tenth of a figure's time."""
    boxes = [ax.get_position() for ax in axes]
    x0, x1 = min(box.x0 for box in boxes), max(box.x1 for box in boxes)
    y0, y1 = min(box.y0 for box in boxes), max(box.y1 for box in boxes)
    width, height = figure.get_size_inches()
    vertical = location == "right"
    length = length or (0.85 if vertical else 0.6)
    if vertical:
        box = (x1 + 0.12 / width, y0 + (1 - length) / 2 * (y1 - y0), COLOUR_BAR_INCHES / width,
               length * (y1 - y0))
    else:
        box = (x0 + (1 - length) / 2 * (x1 - x0), y0 - 0.3 / height, length * (x1 - x0),
               COLOUR_BAR_INCHES / height)
    left, bottom = round(box[0] * width * DPI), round(box[1] * height * DPI)
    columns, rows = max(1, round(box[2] * width * DPI)), max(1, round(box[3] * height * DPI))
    low, high = scale.norm.vmin, scale.norm.vmax
    along = (np.arange(rows if vertical else columns) + 0.5) / (rows if vertical else columns)
    values = high - along * (high - low) if vertical else low + along * (high - low)
    strip = scale.to_rgba(values, bytes=True)
    x_frac, y_frac = left / (width * DPI), bottom / (height * DPI)
    w_frac, h_frac = columns / (width * DPI), rows / (height * DPI)
    MosaicPanel(figure, (x_frac, y_frac, w_frac, h_frac)).show(
        np.broadcast_to(strip[:, None] if vertical else strip[None], (rows, columns, 4)),
        (rows, columns))
    length_points = (h_frac * height if vertical else w_frac * width) * 72
    if ticks is None:
        ticks, labels, offset = tick_labels(low, high, length_points, vertical)
    else:
        labels, offset = [f"{value:.2g}" for value in ticks], ""
    tick = TICK_POINTS / 72 / (width if vertical else height)
    pad = (TICK_POINTS + TICK_PAD_POINTS) / 72 / (width if vertical else height)
    places = [(value - low) / (high - low) for value in ticks]
    if vertical:
        edge = x_frac + w_frac
        segments = [((edge, edge + tick), (y_frac + place * h_frac,) * 2) for place in places]
        for place, text in zip(places, labels):
            figure.text(edge + pad, y_frac + place * h_frac, text, fontsize=TICK_LABEL_POINTS,
                        ha="left", va="center_baseline")
        widest = max((text_width(text, TICK_LABEL_POINTS) for text in labels), default=0.0)
        figure.text(edge + pad + (widest + LABEL_PAD_POINTS) / 72 / width, y_frac + h_frac / 2,
                    label, fontsize=AXIS_LABEL_POINTS, rotation=90, ha="left", va="center")
        if offset:
            figure.text(x_frac, y_frac + h_frac + TICK_PAD_POINTS / 72 / height, offset,
                        fontsize=TICK_LABEL_POINTS, ha="left", va="bottom")
    else:
        segments = [((x_frac + place * w_frac,) * 2, (y_frac - tick, y_frac)) for place in places]
        for place, text in zip(places, labels):
            figure.text(x_frac + place * w_frac, y_frac - pad, text, fontsize=TICK_LABEL_POINTS,
                        ha="center", va="top")
        figure.text(x_frac + w_frac / 2,
                    y_frac - pad - (1.2 * TICK_LABEL_POINTS + LABEL_PAD_POINTS) / 72 / height,
                    label + (f" ({offset})" if offset else ""), fontsize=AXIS_LABEL_POINTS,
                    ha="center", va="top")
    for xs, ys in segments:
        figure.add_artist(Line2D(xs, ys, linewidth=LINE_POINTS, color="black",
                                 transform=figure.transFigure))


def tick_labels(low: float, high: float, length_points: float, vertical: bool
                ) -> tuple[list[float], list[str], str]:
    """The ticks matplotlib's own axis would put on a colour bar from `low` to `high` that is
    `length_points` long, their labels and the axis' offset text (e.g. "1e-5", or "")."""
    space = length_points / (TICK_LABEL_POINTS * (2 if vertical else 3))
    locator = ticker.MaxNLocator(nbins=int(np.clip(space, 1, 9)), steps=[1, 2, 2.5, 5, 10])
    tolerance = 1e-10 * (high - low)
    ticks = [float(value) for value in locator.tick_values(low, high)
             if low - tolerance <= value <= high + tolerance]
    formatter = ticker.ScalarFormatter()
    formatter.create_dummy_axis()
    formatter.axis.set_view_interval(low, high)
    return ticks, list(formatter.format_ticks(ticks)), formatter.get_offset()


def text_width(text: str, points: float) -> float:
    """The width of `text` in points, as Agg lays it out."""
    width, _, _ = text_renderer().get_text_width_height_descent(text, FontProperties(size=points),
                                                                False)
    return width * 72 / DPI


def number_tiles(ax, count: int, cols: int, tile_shape: tuple[int, int], pad: int = 1,
                 colour: str = "white", inside: bool = False,
                 offset: tuple[int, int] = (0, 0)) -> None:
    """Print each tile's index (its filter's index in the npz arrays) at its top-left corner,
    into the mosaic that `paint_mosaic` drew on `ax`: in the separator above it, or `inside`
    the tile where the separators are thin. `offset`: the (row, column) in the drawn image
    where the tiled grid starts."""
    image = ax.get_images()[-1]
    pixels = np.array(image.get_array())
    left, right, bottom, top = image.get_extent()
    per_row, per_col = pixels.shape[0] / (bottom - top), pixels.shape[1] / (right - left)
    ink = np.array(matplotlib.colors.to_rgba(colour, alpha=1.0)) * 255
    height, width = tile_shape
    for index in range(count):
        row, col = divmod(index, cols)
        y = offset[0] + pad + row * (height + pad) - 0.5 - (0 if inside else pad / 2)
        x = offset[1] + pad + col * (width + pad) - 0.5
        coverage, anchor_row, anchor_col = text_stamp(str(index), TILE_NUMBER_POINTS, "left",
                                                      "top" if inside else "center")
        stamp_at(pixels, coverage, round((y - top) * per_row) - anchor_row,
                 round((x - left) * per_col) - anchor_col, ink)
    image.set_data(pixels)


def stamp_at(pixels: np.ndarray, coverage: np.ndarray, top: int, left: int,
             ink: np.ndarray) -> None:
    """Blend `ink` into the uint8 `pixels` (h, w, channels) with `coverage` placed at
    (top, left), clipped to the image."""
    rows = slice(max(top, 0), min(top + coverage.shape[0], pixels.shape[0]))
    cols = slice(max(left, 0), min(left + coverage.shape[1], pixels.shape[1]))
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    alpha = coverage[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left, None]
    blended = pixels[rows, cols] * (1 - alpha) + ink[:pixels.shape[2]] * alpha
    pixels[rows, cols] = blended.round().astype(np.uint8)
