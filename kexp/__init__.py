"""kexp: Keras experiments that show how the numbers in a CNN filter are decided.

The public API for your own scripts. Names are loaded on first use, so `import kexp` (and the
CLI's --help) does not import TensorFlow until a model, callback or training run is asked for.

    from kexp import build_model, KernelSnapshots, open_run
    model = build_model("convnet", init="he_normal")
    model.fit(x, y, callbacks=[KernelSnapshots("my_kernels")])
    run = open_run()  # the newest run folder as a Run: run.config, run.kernels("final")
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "kexp.config",
    "build_model": "kexp.network.models",
    "KernelSnapshots": "kexp.training.callbacks",
    "EpochLog": "kexp.training.callbacks",
    "EpochCheckpoint": "kexp.training.checkpoint",
    "conv_kernels": "kexp.network.conv_layers",
    "conv_biases": "kexp.network.conv_layers",
    "feature_maps": "kexp.probes.keras_views",
    "top_patches": "kexp.probes.keras_views",
    "optimal_inputs": "kexp.probes.keras_views",
    "filter_gradients": "kexp.training.forces",
    "single_orientation_fraction": "kexp.filters.analysis",
    "load_model": "kexp.network.saving",
    "save_model_atomic": "kexp.network.saving",
    "build_keras_initializer": "kexp.network.keras_initializers",
    "parse_spec": "kexp.network.initializers",
    "theory": "kexp.network.initializers",
    "initializer_names": "kexp.network.initializers",
    "load_mnist": ("kexp.digits.data", "load"),
    "train": "kexp.run_record",  # returns a Run (path-like), as do resume and open_run
    "resume": "kexp.run_record",
    "Run": "kexp.run_record",
    "open_run": "kexp.run_record",
    "list_runs": "kexp.run_record",
    "read_config": "kexp.storage.runs",
    "KexpError": "kexp.errors",
    "render_run": "kexp.views.plots",
    "plot_filter_grids": "kexp.views.plots",
    "plot_histograms": "kexp.views.plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'kexp' has no attribute {name!r}")
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module_name), attribute)
