"""`kexp explain RUN`: (re)compute what a run's filter views need and redraw its figures.

Training does this at its end. This command is for runs that lack it (an interrupted run, one
trained before kexp computed the views, or one whose computation failed): it chooses the probe
digits again from the run's own test digits where they are missing, computes each conv filter's
optimal input before and after training (TensorFlow: gradient ascent), and redraws every figure.
The model is rebuilt from config.json; its conv layers get the snapshots' kernels and biases.
"""

from __future__ import annotations

from pathlib import Path

from kexp.cli_options import add_command, add_run, add_runs_dir
from kexp.storage import runs
from kexp.training import tf_startup


def explain_run(run_dir: Path) -> list[Path]:
    """Write the run's probe digits (if missing) and optimal inputs, then redraw its figures;
    returns the figures written."""
    runs.first_and_last_snapshots(run_dir)  # a run with nothing to explain, before TensorFlow
    tf_startup.start_tensorflow()  # its start-up lines left out
    from kexp.digits import inputs  # TensorFlow: only when run
    from kexp.network.models import build_model
    from kexp.probes import filter_views, keras_views
    from kexp.views import plots

    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    try:
        filter_views.read_probe_digits(run_dir)
    except runs.RunError:  # missing or damaged: chosen again from the run's own test digits
        prepared, _ = inputs.prepare_data(config)
        filter_views.write_probe_digits(run_dir, prepared.x_test, prepared.y_test)
    init, init_conv2 = config.init_specs
    model = build_model(config.model, init=init, init_conv2=init_conv2,
                        conv2_filters=config.conv2_filters, compile=False)
    keras_views.write_optimal_inputs(run_dir, model, config.seed)
    return plots.render_run(run_dir)


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "explain", "compute a run's optimal inputs (TensorFlow) "
                         "and redraw its figures, feature maps and strongest patches included",
                         _explain_command)
    add_run(parser)
    add_runs_dir(parser)


def _explain_command(args) -> int:
    for run_dir in runs.resolve_run(args.run, args.runs_dir):
        written = explain_run(run_dir)
        print(f"kexp: {run_dir}: drew {', '.join(path.name for path in written)}")
    return 0
