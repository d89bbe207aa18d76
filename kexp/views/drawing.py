"""The drawing pieces every kexp figure is built from: one tiled image per grid (one image,
not dozens of subplots: 11x faster), painted at its panel's own pixels with its tile numbers
(no Axes, no resampling), colour bars with matplotlib's ticks, one colour scale shared by the
panels it compares, and an atomic save. numpy + matplotlib only; kexp.views.plots,
kexp.views.view_figures and kexp.views.force_figures draw with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.artist import Artist
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import text_to_path
from matplotlib.transforms import Affine2D, Bbox, TransformedBbox
from PIL import Image

from kexp.storage import atomic

CMAP = "RdBu_r"
SEPARATOR_COLOUR = "0.35"
DPI = 110
# zlib level of the PNGs: 1 saved large mosaics twice as fast as the default 6, for files about
# 15% larger (measured on a run's feature-map figure).
PNG_COMPRESS_LEVEL = 1
# Text drawn without FreeType's hinting: a fifth less time for every kexp figure (its text is
# most of the drawing: measured on a run's 8 figures, 1.12 s -> 0.95 s), and the same letters to
# the eye at kexp's 110 dpi. Set around each save, so a script that imports kexp keeps its own.
SAVE_RC = {"text.hinting": "no_hinting"}
# Room of a hand-laid figure, in inches: around it, above each panel (its title), beside a panel
# for a colour bar with its ticks and label, and the colour bar itself.
MARGIN_INCHES = 0.15
SUPTITLE_INCHES = 0.45
SUPTITLE_LINE_INCHES = 0.2  # each further line of a suptitle
TITLE_INCHES = 0.3
COLOUR_BAR_ROOM_INCHES = 1.1
COLOUR_BAR_INCHES = 0.15
# Matplotlib's defaults for an axis, which kexp's colour bars follow: tick label and label size,
# tick length, the gap between tick and label, and the label's distance from the tick labels.
TICK_LABEL_POINTS = AXIS_LABEL_POINTS = 10
TICK_POINTS, TICK_PAD_POINTS, LABEL_PAD_POINTS, LINE_POINTS = 3.5, 3.5, 4.0, 0.8
TITLE_PAD_POINTS = 6.0
SUPTITLE_POINTS = 12


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


def paint_mosaic(ax, mosaic: np.ndarray, limit: float, title: str, cmap: str = CMAP,
                 low: float | None = None, separator: str = SEPARATOR_COLOUR) -> ScalarMappable:
    """`draw_mosaic` for a still figure, on a `MosaicPanel` of `panel_figure` (or any axes),
    10x cheaper to save: the mosaic is coloured once (numpy colour lookup) at the panel's own
    pixels (nearest neighbour), so it is drawn without resampling, and `number_tiles` can print
    into it. Returns the colour scale, for `colour_bar`."""
    scale = ScalarMappable(Normalize(-limit if low is None else low, limit),
                           matplotlib.colormaps[cmap].with_extremes(bad=separator))
    colours = scale.to_rgba(mosaic, bytes=True)
    width, height = axes_pixels(ax)
    rows = ((np.arange(height) + 0.5) * mosaic.shape[0] // height).astype(int)
    cols = ((np.arange(width) + 0.5) * mosaic.shape[1] // width).astype(int)
    pixels = colours.view(np.uint32)[..., 0][rows[:, None], cols[None, :]]  # 4x less to move
    pixels = pixels.view(np.uint8).reshape(height, width, 4)
    if not isinstance(ax, MosaicPanel):  # an Axes of someone else's figure
        ax.imshow(pixels, interpolation="nearest", aspect="auto",
                  extent=(-0.5, mosaic.shape[1] - 0.5, mosaic.shape[0] - 0.5, -0.5))
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.show(pixels, mosaic.shape)
    ax.set_title(title, fontsize=10)
    return scale


class MosaicPanel:
    """Where `panel_figure` puts a mosaic: what kexp's figures ask of the axes that show one (a
    title, text in the mosaic's coordinates, axis labels, its box, its image) without an Axes,
    whose ticks, grid lines and title layout took a fifth of a figure's time and which a mosaic
    never shows. A frame like an Axes' is drawn around it."""

    def __init__(self, figure: Figure, box: tuple[float, float, float, float]):
        self.figure, self.box = figure, Bbox.from_bounds(*box)
        self.images: list[PaintedMosaic] = []
        self.transData = figure.transFigure
        self.title = None
        # The frame is one of the figure's own lines (fig.lines, not an artist): IPython shows a
        # returned figure inline only where it has axes or lines.
        (x0, y0), (x1, y1) = self.box.get_points()
        frame = Line2D([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], linewidth=LINE_POINTS,
                       color="black", solid_joinstyle="miter", zorder=3,
                       transform=figure.transFigure, figure=figure)
        figure.lines.append(frame)

    def show(self, pixels: np.ndarray, shape: tuple[int, int]) -> None:
        """Draw `pixels` (RGBA, the panel's size in pixels) as a mosaic of `shape` (rows,
        columns), whose pixel centres are then this panel's data coordinates."""
        rows, cols = shape
        self.transData = (Affine2D().translate(0.5, 0.5)
                          .scale(self.box.width / cols, -self.box.height / rows)
                          .translate(self.box.x0, self.box.y1) + self.figure.transFigure)
        self.images.append(self.figure.add_artist(PaintedMosaic(pixels, self.box, shape)))

    def get_images(self) -> list:
        return self.images

    def get_figure(self) -> Figure:
        return self.figure

    def get_position(self) -> Bbox:
        return self.box

    def text(self, x: float, y: float, text: str, **options):
        """`text` at (x, y) in the mosaic's coordinates (column, row)."""
        return self.figure.text(x, y, text, transform=self.transData, **options)

    def set_title(self, title: str, fontsize: float = 10, pad: float = TITLE_PAD_POINTS):
        """A title above the panel, as `Axes.set_title` puts it."""
        if self.title is not None:
            self.title.remove()
        self.title = self.figure.text(self.box.x0 + self.box.width / 2,
                                      self.box.y1 + pad / 72 / self.figure.get_figheight(),
                                      title, fontsize=fontsize, ha="center", va="baseline")
        return self.title

    def get_title(self) -> str:
        return self.title.get_text() if self.title is not None else ""

    def set_xlabel(self, label: str, labelpad: float = LABEL_PAD_POINTS):
        return self.figure.text(self.box.x0 + self.box.width / 2,
                                self.box.y0 - labelpad / 72 / self.figure.get_figheight(),
                                label, fontsize=AXIS_LABEL_POINTS, ha="center", va="top")

    def set_ylabel(self, label: str, labelpad: float = LABEL_PAD_POINTS):
        return self.figure.text(self.box.x0 - labelpad / 72 / self.figure.get_figwidth(),
                                self.box.y0 + self.box.height / 2, label, rotation=90,
                                fontsize=AXIS_LABEL_POINTS, ha="right", va="center")


class PaintedMosaic(Artist):
    """An RGBA image already at its panel's size in pixels, handed to the renderer as it is
    (matplotlib's resampling of a large image, to float and back, took most of a figure's
    time); at another resolution (a notebook's) it is enlarged or shrunk to fit first."""

    def __init__(self, pixels: np.ndarray, box: Bbox, shape: tuple[int, int]):
        super().__init__()
        self.pixels, self.box, self.shape = pixels, box, shape
        self.set_zorder(1)

    def get_array(self) -> np.ndarray:
        return self.pixels

    def set_data(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.stale = True

    def get_extent(self) -> tuple[float, float, float, float]:
        return -0.5, self.shape[1] - 0.5, self.shape[0] - 0.5, -0.5

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        box = TransformedBbox(self.box, self.get_figure(root=True).transFigure)
        width, height = max(1, round(box.width)), max(1, round(box.height))
        pixels = self.pixels
        if pixels.shape[:2] != (height, width):
            rows = ((np.arange(height) + 0.5) * pixels.shape[0] // height).astype(int)
            cols = ((np.arange(width) + 0.5) * pixels.shape[1] // width).astype(int)
            pixels = pixels[rows[:, None], cols[None, :]]
        gc = renderer.new_gc()
        renderer.draw_image(gc, round(box.x0), round(box.y0), np.ascontiguousarray(pixels[::-1]))
        gc.restore()
        self.stale = False


def axes_pixels(ax) -> tuple[int, int]:
    """The width and height of `ax` in pixels of the saved figure (at DPI)."""
    box = ax.get_position()
    width, height = ax.get_figure().get_size_inches() * DPI
    return max(1, round(box.width * width)), max(1, round(box.height * height))


@dataclass(frozen=True)
class Panel:
    """One panel of a hand-laid figure: its size in inches, the room kept free left of it (its
    labels) and right of it (a colour bar, the next panel's labels), and whether it shows a
    mosaic (a MosaicPanel) or a chart (an Axes)."""

    width: float
    height: float
    left: float = MARGIN_INCHES
    right: float = MARGIN_INCHES
    mosaic: bool = True  # a MosaicPanel; False: a real Axes (a chart with its axes)


def panel_figure(rows: list[list[Panel]], suptitle: str, below: float = MARGIN_INCHES,
                 above: float = TITLE_INCHES) -> tuple[Figure, list[list]]:
    """A figure laid out by arithmetic: rows of panels, each row centred, with `above` each
    panel the room for its title (and labels) and `below` under each row (axis labels, colour
    bars). No layout engine: constrained layout drew every figure twice and took a third of its
    time. Panels sit on whole pixels of the saved figure, so `paint_mosaic` fills them pixel
    for pixel; mosaic panels are MosaicPanels, chart panels Axes."""
    suptitle_inches = SUPTITLE_INCHES + SUPTITLE_LINE_INCHES * suptitle.count("\n")
    row_widths = [sum(panel.left + panel.width + panel.right for panel in row) for row in rows]
    row_heights = [above + max(panel.height for panel in row) + below for row in rows]
    width = whole_pixels(max(max(row_widths), suptitle_width(suptitle)) + 2 * MARGIN_INCHES)
    height = whole_pixels(suptitle_inches + sum(row_heights) + MARGIN_INCHES)
    figure = Figure(figsize=(width, height), dpi=DPI)
    axes, top = [], height - suptitle_inches
    for row, row_width, row_height in zip(rows, row_widths, row_heights):
        x, row_axes = (width - row_width) / 2, []
        for panel in row:
            x += panel.left
            left, bottom = whole_pixels(x), whole_pixels(top - above - panel.height)
            box = (left / width, bottom / height, whole_pixels(panel.width) / width,
                   whole_pixels(panel.height) / height)
            row_axes.append(MosaicPanel(figure, box) if panel.mosaic else figure.add_axes(box))
            x += panel.width + panel.right
        axes.append(row_axes)
        top -= row_height
    figure.suptitle(suptitle, fontsize=SUPTITLE_POINTS, y=1 - 0.12 / height, va="top")
    return figure, axes


def suptitle_width(suptitle: str) -> float:
    """Inches of the widest line of `suptitle`: a figure is made at least this wide, so no
    suptitle line is cut at the figure's edges."""
    return max(text_width(line, SUPTITLE_POINTS) for line in suptitle.split("\n"))


def text_width(line: str, points: float) -> float:
    """Inches of one line of text in matplotlib's default font, measured unhinted as kexp saves
    it (SAVE_RC)."""
    width, _, _ = text_to_path.get_text_width_height_descent(line, FontProperties(size=points),
                                                             ismath=False)
    return width / 72


def wrap_to_width(text: str, inches: float, points: float) -> str:
    """`text` broken at spaces into lines no wider than `inches` (a word wider than that keeps a
    line of its own): a panel title that names a long initializer stays over its own panel
    instead of running into the next one or off the figure."""
    lines = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        line = words[0]
        for word in words[1:]:
            if text_width(f"{line} {word}", points) <= inches:
                line = f"{line} {word}"
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return "\n".join(lines)


def whole_pixels(inches: float) -> float:
    """`inches` rounded to a whole number of pixels at DPI."""
    return round(inches * DPI) / DPI


def save_figure(figure: Figure, path: Path, palette_colours: int | None = None) -> Path:
    """Save `figure` through a temporary sibling and a rename: never a half-written PNG. With
    `palette_colours` the PNG is quantized to that many colours: a third of the size or less and
    no visible change for flat-coloured plots (the README's copies stay small)."""
    path = Path(path)
    file_format = path.suffix.lstrip(".") or "png"
    options = {"pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}} if file_format == "png" else {}

    def write(temporary):
        with matplotlib.rc_context(SAVE_RC):
            figure.savefig(temporary, dpi=DPI, format=file_format, **options)
        if palette_colours:
            with Image.open(temporary) as image:
                quantized = image.convert("RGB").quantize(palette_colours)
            quantized.save(temporary, format="png", optimize=True)

    return atomic.write_path_atomic(path, write)
