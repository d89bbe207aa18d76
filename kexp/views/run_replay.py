"""What the figures and the page of one run read from its folder and replay from its snapshots,
each read or computed once: the end of `kexp train` and `kexp visualize` draw the figures
(kexp.views.plots.render_run) and then write the page (kexp.views.run_page) from the same
snapshots, probe digits, layer outputs, optimal inputs and forces.

One RunReplay per call that draws a run: make one, hand it to render_run and write_run_page,
and let it go; nothing is kept past that. Its arrays are read-only, so no figure can change
what the next one draws. status.json and history.csv are not kept: the page reads them after
the figures, once the run is recorded finished. numpy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kexp.probes import filter_views
from kexp.storage import runs, snapshots
from kexp.views import force_figures


def _read_only(value):
    """`value` with every numpy array in it (in dicts, tuples and lists) made read-only."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, (dict, tuple, list)):
        for item in value.values() if isinstance(value, dict) else value:
            _read_only(item)
    return value


class RunReplay:
    """One run folder's files and replayed layers, each read or computed on first use. A reader
    that raises (a damaged file) raises again on the next use: failures are not kept."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._found: dict = {}
        self._optimal_inputs_written: Callable[[], object] | None = None

    def optimal_inputs_written_by(self, wait: Callable[[], object]) -> None:
        """views/optimal_inputs.npz is being written elsewhere (the end of a training computes
        it on a thread beside the figures): `wait()` returns once it is, before it is read."""
        self._optimal_inputs_written = wait

    def _once(self, key, compute):
        if key not in self._found:
            self._found[key] = _read_only(compute())
        return self._found[key]

    def config(self):
        """The run's settings, checked (runs.read_config)."""
        return self._once("config", lambda: runs.read_config(self.run_dir))

    def snapshot(self, path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The kernels and biases of snapshot file `path` (runs.read_snapshot), read once."""
        return self._once(("snapshot", Path(path)), lambda: runs.read_snapshot(path))

    def kernels(self, path: Path, like: dict[str, np.ndarray] | None = None
                ) -> dict[str, np.ndarray]:
        """The kernels of snapshot `path`; with `like`, checked to have its layers and shapes
        (runs.load_kernels)."""
        kernels = self.snapshot(path)[0]
        return kernels if like is None else snapshots.check_like(path, kernels, like)

    def probe_digits(self) -> tuple[np.ndarray, np.ndarray]:
        """views/probe_digits.npz: images (n, 28, 28, 1) in [0, 1] and labels."""
        return self._once("probe digits",
                          lambda: filter_views.read_probe_digits(self.run_dir))

    def maps(self, path: Path) -> dict[str, np.ndarray] | None:
        """Every conv layer's maps of the probe digits replayed from snapshot `path`; None when
        the snapshot has no biases (kexp kept only kernels then)."""
        def replay():
            kernels, biases = self.snapshot(path)
            if set(biases) != set(kernels):
                return None
            return filter_views.snapshot_feature_maps(self.config().model, kernels, biases,
                                                      self.probe_digits()[0])

        return self._once(("maps", Path(path)), replay)

    def patches(self, path: Path) -> dict[str, filter_views.TopPatches] | None:
        """Each conv layer's strongest patches of the probe digits under snapshot `path`; None
        where `maps` is."""
        def find():
            maps = self.maps(path)
            if maps is None:
                return None
            images = self.probe_digits()[0]
            stages = filter_views.run_stages(self.config().model, self.kernels(path))
            fields = filter_views.receptive_fields(stages, images.shape[1])
            return {layer: filter_views.strongest_patches(images, layer_maps, fields[layer])
                    for layer, layer_maps in maps.items()}

        return self._once(("patches", Path(path)), find)

    def optimal_inputs(self) -> dict:
        """views/optimal_inputs.npz (filter_views.read_optimal_inputs); {} where there is none."""
        def read():
            if self._optimal_inputs_written is not None:
                self._optimal_inputs_written()
            return filter_views.read_optimal_inputs(self.run_dir)

        return self._once("optimal inputs", read)

    def kept(self, key, compute: Callable[[], object]):
        """`compute()`, once per `key` for this replay: what a caller derives from the run and
        would otherwise compute twice (the page's curves, drawn at the start of the figures
        while the optimal inputs' ascent starts beside them)."""
        return self._once(("kept", key), compute)

    def forces(self) -> dict:
        """views/forces.npz, checked (force_figures.read_forces)."""
        return self._once("forces", lambda: force_figures.read_forces(self.run_dir))
