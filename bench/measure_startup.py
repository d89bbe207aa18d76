"""Start-up and plotting: `kexp --help` (which must stay TensorFlow-free and under half a second),
`kexp visualize`, re-rendering a run's figures and drawing one filter grid."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kexp.storage import runs
from kexp.views import plots

from common import REPO_ROOT, spread

HELP_CALLS = 5
GRID_CALLS = 5
VISUALIZE_CALLS = 3
HEAVY_MODULES = ("tensorflow", "keras", "matplotlib")
HELP_IMPORTS_PROBE = f"""import sys
from kexp import cli
try:
    cli.main(['--help'])
except SystemExit:
    pass
print([name for name in {HEAVY_MODULES!r} if name in sys.modules])"""


def kexp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kexp", *args]


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def refusal_seconds(command: list[str]) -> float:
    """Wall time of a command that must be refused (exit 2) before TensorFlow starts."""
    started = time.perf_counter()
    refused = subprocess.run(command, cwd=REPO_ROOT, capture_output=True)
    if refused.returncode != 2:
        raise RuntimeError(f"{command} was not refused: exit {refused.returncode}")
    return time.perf_counter() - started


def help_imports() -> list[str]:
    """The heavy modules that `kexp --help` imports (none, as it should be)."""
    probe = subprocess.run([sys.executable, "-c", HELP_IMPORTS_PROBE], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True)
    return json.loads(probe.stdout.strip().splitlines()[-1].replace("'", '"'))


def timed_calls(calls: int, action) -> dict:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return spread(seconds)


def optimal_inputs_seconds(run_dir: Path) -> dict:
    """Computing the run's optimal inputs again, before and after training (budget: 2 s)."""
    import keras  # loaded already by the bench's trainings

    from kexp.probes import keras_views

    model = keras.saving.load_model(run_dir / runs.MODEL_FILE)
    return timed_calls(VISUALIZE_CALLS, lambda: keras_views.write_optimal_inputs(run_dir, model))


def startup_and_plotting(run_dir: Path) -> dict:
    """Everything above, the figures drawn from `run_dir` (a finished run of the repeats)."""
    visualize = kexp_command("visualize", run_dir.name, "--runs-dir", str(run_dir.parent))
    snapshots = runs.snapshot_sequence(run_dir)  # initial first, final last
    before, after = (runs.load_kernels(snapshots[index][1])["conv1"] for index in (0, -1))
    with tempfile.TemporaryDirectory() as scratch:
        grid_seconds = timed_calls(GRID_CALLS, lambda: plots.plot_filter_grids(
            before, after, Path(scratch) / "conv1.png"))
    return {"help_seconds": spread([wall_seconds(kexp_command("--help"))
                                    for _ in range(HELP_CALLS)]),
            "help_imports": help_imports(),
            "typo_seconds": spread([refusal_seconds(kexp_command(
                "train", "--init", "glorot_unifrom")) for _ in range(HELP_CALLS)]),
            "visualize_command_seconds": spread([wall_seconds(visualize)
                                                 for _ in range(VISUALIZE_CALLS)]),
            "render_run_seconds": timed_calls(VISUALIZE_CALLS, lambda: plots.render_run(run_dir)),
            "figures": len(plots.render_run(run_dir)),
            "optimal_inputs_seconds": optimal_inputs_seconds(run_dir),
            "conv1_grid_seconds": grid_seconds}
