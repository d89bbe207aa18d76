"""The fast drawing paths draw what matplotlib's own would: band energies as sums over a
matrix, painted mosaics in the colour map's colours pixel for pixel, colour-bar ticks where
matplotlib's colour bar puts them."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure

from kexp.filters import analysis
from kexp.views import drawing, figure_labels


@pytest.mark.parametrize("side, band", [(64, 30.0), (28, 30.0), (64, 10.0), (32, 90.0),
                                        (64, 180.0)])
def test_orientation_band_runs_hold_exactly_the_band_matrix(side, band):
    bands = analysis.orientation_bands(side, band)
    order, starts, stops = analysis.orientation_band_runs(side, band)
    rebuilt = np.zeros_like(bands)
    for column, (start, stop) in enumerate(zip(starts, stops)):
        rebuilt[order[np.arange(start, stop) % len(order)], column] = 1.0
    assert np.array_equal(rebuilt, bands)


def test_single_orientation_fraction_equals_the_band_matrix_sums():
    images = np.random.default_rng(0).normal(size=(6, 28, 28))
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    windowed = centred * np.outer(np.hanning(28), np.hanning(28))
    power = (np.abs(np.fft.fft2(windowed, s=(64, 64))) ** 2).reshape(6, -1)
    expected = (power @ analysis.orientation_bands(64, 30.0)).max(axis=1) / power.sum(axis=1)
    np.testing.assert_allclose(analysis.single_orientation_fraction(images), expected,
                               rtol=1e-12)


def test_painted_mosaic_is_drawn_pixel_for_pixel_in_the_colour_maps_colours():
    mosaic = drawing.tile(np.random.default_rng(1).normal(size=(6, 3, 3)), 2, 3)
    figure, [[ax]] = drawing.panel_figure([[drawing.Panel(1.7, 1.1)]], "painted")
    scale = drawing.paint_mosaic(ax, mosaic, 2.0, "title")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    saved = np.asarray(canvas.buffer_rgba())
    box = ax.get_position()  # on whole pixels of the saved figure
    top, left = round((1 - box.y1) * figure.bbox.height), round(box.x0 * figure.bbox.width)
    width, height = drawing.axes_pixels(ax)
    drawn = saved[top:top + height, left:left + width]
    rows = ((np.arange(height) + 0.5) * mosaic.shape[0] // height).astype(int)
    cols = ((np.arange(width) + 0.5) * mosaic.shape[1] // width).astype(int)
    expected = scale.to_rgba(mosaic[rows][:, cols], bytes=True)
    inside = (slice(2, -2), slice(2, -2))  # the frame is drawn over the outermost pixels
    np.testing.assert_array_equal(drawn[inside], expected[inside])
    separator = np.round(np.array(to_rgba(drawing.SEPARATOR_COLOUR)) * 255)
    assert (expected[np.isnan(mosaic[rows][:, cols])] == separator).all()


def test_a_mosaic_figure_has_what_ipython_needs_to_show_it_inline():
    figure, [[ax]] = drawing.panel_figure([[drawing.Panel(1.0, 1.0)]], "shown")
    drawing.paint_mosaic(ax, np.zeros((3, 3)), 1.0, "zeros")
    assert figure.axes or figure.lines  # IPython's print_figure returns nothing otherwise


@pytest.mark.parametrize("low, high, inches, vertical", [
    (-0.13, 0.13, 2.0, True), (0.0, 1.07, 3.5, True), (-0.042, 0.042, 1.2, True),
    (0.0, 0.53, 4.0, False), (-3e-6, 3e-6, 2.5, True), (0.0, 1.93, 6.0, True)])
def test_colour_bar_ticks_are_matplotlibs(low, high, inches, vertical):
    figure = Figure(figsize=(8, 8), dpi=drawing.DPI)
    cax = figure.add_axes((0.1, 0.1, 0.03, inches / 8) if vertical
                          else (0.1, 0.5, inches / 8, 0.03))
    figure.colorbar(ScalarMappable(Normalize(low, high), "RdBu_r"), cax=cax,
                          orientation="vertical" if vertical else "horizontal")
    FigureCanvasAgg(figure).draw()
    axis = cax.yaxis if vertical else cax.xaxis
    shown = [(tick.get_loc(), tick.label1.get_text()) for tick in axis.get_major_ticks()
             if low - 1e-12 <= tick.get_loc() <= high + 1e-12]
    ticks, labels, offset = figure_labels.tick_labels(low, high, inches * 72, vertical)
    assert ticks == pytest.approx([loc for loc, _ in shown])
    assert labels == [text for _, text in shown]
    assert offset == axis.get_offset_text().get_text()


def test_a_saved_figure_is_drawn_without_hinting_and_leaves_the_callers_settings(tmp_path):
    """save_figure draws text unhinted (a fifth faster) only while it saves: the PNG equals one
    saved by hand under that setting, and a script's own rcParams are as they were."""
    import matplotlib
    from PIL import Image

    def labelled() -> Figure:
        figure = Figure(figsize=(3, 1), dpi=drawing.DPI)
        figure.text(0.05, 0.4, "conv1: the 32 3x3 filters, seed 0", fontsize=12)
        return figure

    with matplotlib.rc_context({"text.hinting": "default"}):
        drawing.save_figure(labelled(), tmp_path / "kexp.png")
        assert matplotlib.rcParams["text.hinting"] == "default"
        with matplotlib.rc_context(drawing.SAVE_RC):
            labelled().savefig(tmp_path / "unhinted.png", dpi=drawing.DPI)
        labelled().savefig(tmp_path / "hinted.png", dpi=drawing.DPI)
    pixels = {name: np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB"))
              for name in ("kexp", "unhinted", "hinted")}
    assert np.array_equal(pixels["kexp"], pixels["unhinted"])
    assert not np.array_equal(pixels["kexp"], pixels["hinted"])
