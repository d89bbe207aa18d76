"""Kernel mosaics and figures: layout, the shared symmetric scale, and rendering without TF."""

import numpy as np

from kexp.views import plots

from helpers import run_python


def test_tile_places_filters_with_separators():
    tiles = np.arange(32 * 9, dtype=float).reshape(32, 3, 3)
    mosaic = plots.tile(tiles, 4, 8)
    assert mosaic.shape == (4 * 4 + 1, 8 * 4 + 1)
    assert np.array_equal(mosaic[1:4, 1:4], tiles[0])
    assert np.array_equal(mosaic[5:8, 1:4], tiles[8])  # second row starts with filter 9
    assert np.isnan(mosaic[0]).all() and np.isnan(mosaic[:, 4]).all()
    assert np.count_nonzero(~np.isnan(mosaic)) == 32 * 9


def test_filter_tiles_and_conv2_mosaic_layout():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 4, 6))
    assert np.array_equal(plots.filter_tiles(kernel[:, :, :1])[5], kernel[:, :, 0, 5])
    mosaic = plots.conv2_mosaic(kernel)
    assert mosaic.shape == (6 * 4 + 1, 4 * 4 + 1)  # rows: output filters, columns: inputs
    assert np.array_equal(mosaic[1 + 4 * 2:4 + 4 * 2, 1 + 4 * 3:4 + 4 * 3], kernel[:, :, 3, 2])


def test_symmetric_limit_covers_both_panels():
    assert plots.symmetric_limit(np.array([0.1, -0.3]), np.array([0.2])) == 0.3
    assert plots.symmetric_limit(np.zeros(4)) == 1.0  # an all-zero kernel still draws


def test_grid_shape():
    assert plots.grid_shape(32) == (4, 8) and plots.grid_shape(64) == (8, 8)


def test_visualize_renders_a_run_without_tensorflow(trained_run):
    code = ("import sys\nfrom kexp import cli\nrc = cli.main(['visualize', '--runs-dir', "
            f"{str(trained_run.parent)!r}, {trained_run.name!r}])\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules, rc)")
    result = run_python(code, timeout=120)
    assert "TF False False 0" in result.stdout, result.stderr


def test_zero_kernels_draw_without_errors(tmp_path):
    zeros = {"conv1": np.zeros((3, 3, 1, 32), np.float32)}
    figure = plots.plot_histograms(zeros, zeros, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000 and figure.axes
    figure = plots.plot_filter_grids(zeros["conv1"], zeros["conv1"], tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert len(figure.artists) >= 3  # its panels, painted mosaics on hand-laid boxes


def _drawn_extents(figure):
    """The window extents, in saved pixels, of the suptitle and each axes' title, drawn as
    kexp saves (unhinted)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from kexp.views import drawing
    with matplotlib.rc_context(drawing.SAVE_RC):
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        return (figure._suptitle.get_window_extent(renderer),
                [ax.title.get_window_extent(renderer) for ax in figure.axes if ax.get_title()])


def test_a_suptitle_wider_than_the_panels_widens_the_figure_instead_of_being_cut():
    long_line = "conv1: what pushed each filter, " + "a long run name " * 6
    figure, _ = plots.panel_figure([[plots.Panel(1.0, 1.0)]], f"short\n{long_line}")
    suptitle, _ = _drawn_extents(figure)
    assert suptitle.x0 >= 0 and suptitle.x1 <= figure.bbox.width
    assert figure.get_figwidth() >= suptitle.width / plots.DPI


def test_histogram_titles_naming_long_initializers_stay_over_their_own_panels(tmp_path):
    from kexp.network import initializers
    shapes = {"conv1": (3, 3, 1, 32), "conv2": (3, 3, 32, 64)}
    weights = {layer: np.random.default_rng(0).normal(0, 0.05, shape).astype(np.float32)
               for layer, shape in shapes.items()}
    theories = {layer: initializers.theory("glorot_normal", shape)
                for layer, shape in shapes.items()}
    figure = plots.plot_histograms(weights, weights, tmp_path / "h.png", theories=theories)
    _, (left, right) = _drawn_extents(figure)
    assert 0 <= left.x0 and left.x1 < right.x0 and right.x1 <= figure.bbox.width
    assert theories["conv2"].description.split()[-1] in figure.axes[1].get_title()
