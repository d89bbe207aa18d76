"""`kexp demo NAME|all`: the registry of the claims' demos, the summary files and the sub-command.

Each demo's result is merged into <runs-dir>/demos/summary.json and listed in summary.txt.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from kexp.cli_options import add_command, add_runs_dir
from kexp.storage import atomic, files, runs
from kexp.experiments.demos import (cross_correlation, designed_filters, filter_complexity,
                                    flip_invariance, gaussian_blur, initialization,
                                    learned_filters, peak_filter, sgd_identity)
from kexp.experiments.demos.common import DemoContext, check_converged_run

DEMOS_DIR = "demos"
SUMMARY_JSON = "summary.json"
SUMMARY_TEXT = "summary.txt"

DEMOS = {
    "init_distribution": initialization.demo_init_distribution,
    "backprop_change": learned_filters.demo_backprop_change,
    "peak_filter": peak_filter.demo_peak_filter,
    "learn_peak": peak_filter.demo_learn_peak,
    "image_patches": designed_filters.demo_image_patches,
    "designed_filters": designed_filters.demo_designed_filters,
    "glorot_bounds": initialization.demo_glorot_bounds,
    "filters_are_weights": learned_filters.demo_filters_are_weights,
    "conv_shapes": cross_correlation.demo_conv_shapes,
    "edge_detectors": learned_filters.demo_edge_detectors,
    "worked_example": cross_correlation.demo_worked_example,
    "cross_correlation": cross_correlation.demo_cross_correlation,
    "flip_invariance": flip_invariance.demo_flip_invariance,
    "gaussian_blur": gaussian_blur.demo_gaussian_blur,
    "deeper_filters": filter_complexity.demo_deeper_filters,  # issue 9
    "sgd_identity": sgd_identity.demo_sgd_identity,  # issue 19
}
DEMO_NAMES = tuple(DEMOS)  # position + 1 is the item number in issue 3 (15: issue 9, 16: 19)


class DemoError(ValueError):
    """A demo name that does not exist."""


def resolve(name: str) -> list[str]:
    """'all', a demo name or its item number -> demo names."""
    if name == "all":
        return list(DEMO_NAMES)
    if name in DEMOS:
        return [name]
    if name.isdigit() and 1 <= int(name) <= len(DEMO_NAMES):
        return [DEMO_NAMES[int(name) - 1]]
    raise DemoError(f"Invalid value for `name`: '{name}'. Expected one of: all, "
                    f"1..{len(DEMO_NAMES)}, {', '.join(DEMO_NAMES)}.")


def _plain(value):
    """numpy values -> JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_demos(names: list[str], out_dir: Path, figures_dir: Path | None = None,
              converged_dir: Path | None = None) -> dict:
    """Run `names` in order; write summary.json (merged with earlier results) and summary.txt.
    `converged_dir`: a finished run of the default recipe for the demos about trained filters
    (without it, they train one)."""
    ctx = DemoContext(Path(out_dir), Path(figures_dir) if figures_dir else None,
                      converged_dir=Path(converged_dir) if converged_dir else None)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = ctx.out_dir / SUMMARY_JSON
    summary = runs.read_json(summary_path) if summary_path.exists() else {}
    for name in names:
        number = DEMO_NAMES.index(name) + 1
        started = time.time()
        result = _plain(DEMOS[name](ctx))
        result["seconds"] = round(time.time() - started, 1)
        summary[f"{number:02d}_{name}"] = result
        print(f"kexp demo {number:2d} {name} ({result['seconds']} s): {result['summary']}",
              flush=True)
        atomic.write_json_atomic(summary_path, summary)
    lines = [f"{key}: {value['summary']}" for key, value in sorted(summary.items())]
    atomic.write_bytes_atomic(ctx.out_dir / SUMMARY_TEXT, ("\n".join(lines) + "\n").encode())
    return summary


def _title(name: str) -> str:
    """A demo's first docstring sentence, without its item number."""
    text = " ".join(DEMOS[name].__doc__.split())
    return text.split(". ", 1)[1].split(". ")[0].split(": ")[0]


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "demo", "run the experiments that mirror the "
                         "questions' claims", _demo_command)
    parser.add_argument("name", nargs="?", help="a demo name or number (see --list), or 'all'")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    add_runs_dir(parser, f"figures and summaries go to <runs-dir>/{DEMOS_DIR}/")
    parser.add_argument("--figures-dir", default=None,
                        help="also write every figure here (e.g. docs/figures)")
    parser.add_argument("--converged-run", default=None,
                        help="a finished run of the default recipe on mnist-5k, seed 0 (`kexp "
                             "train --data mnist-5k`) for the demos about trained filters (2, "
                             "10, 15); without it they train one")


def _demo_command(args) -> int:
    if args.list or not args.name:
        for number, name in enumerate(DEMO_NAMES, start=1):
            print(f"{number:2d} {name:<20} {_title(name)}")
        if not args.list:
            print("kexp demo: error: give a demo name or number, or 'all'", file=sys.stderr)
            return 2
        return 0
    try:
        names = resolve(args.name)
    except DemoError as error:
        print(f"kexp demo: error: {error}", file=sys.stderr)
        return 2
    if args.converged_run is not None:
        check_converged_run(Path(args.converged_run))
    files.prepare_folder(Path(args.runs_dir) / DEMOS_DIR, "runs_dir", runs.RunError)
    if args.figures_dir is not None:
        files.prepare_folder(args.figures_dir, "figures_dir", runs.RunError)
    started = time.time()
    out_dir = Path(args.runs_dir) / DEMOS_DIR
    run_demos(names, out_dir, args.figures_dir, args.converged_run)
    print(f"kexp demo: {len(names)} demo(s) in {time.time() - started:.0f} s; figures and "
          f"{SUMMARY_TEXT} in {out_dir}")
    return 0
