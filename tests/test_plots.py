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
