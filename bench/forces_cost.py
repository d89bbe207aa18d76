"""The forces row of `make bench` alone: one default `python -m kexp train` (offline digits) and
what recording views/forces.npz cost it, as a share of its training epochs (goal <= 5 %).
Usage: .venv/bin/python bench/forces_cost.py"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kexp.training import tf_startup  # noqa: E402

tf_startup.quiet_logs()

import report  # noqa: E402
from common import BENCH_DATA  # noqa: E402
from measure_training import cli_training  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kexp-bench-forces-") as work_dir:
        default = cli_training(Path(work_dir), "--data", BENCH_DATA)
    for label, value in report.forces_rows(default):
        print(f"{label.strip()}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
