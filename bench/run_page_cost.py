"""The run-page row of `make bench` for one finished run folder: the size of its index.html
(pictures inline) and the seconds to write it again from the folder (budgets for the default
run: 5 MB and 3 s). `make bench` measures the page of its default training the same way.
Usage: .venv/bin/python bench/run_page_cost.py RUN_FOLDER"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report  # noqa: E402
from measure_training import run_page_cost  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(f"Invalid value for `RUN_FOLDER`: {' '.join(argv)!r}. Expected one run folder "
              "(a finished run: runs/<id>).", file=sys.stderr)
        return 2
    for label, value in report.run_page_rows({"run_page": run_page_cost(Path(argv[0]))}):
        print(f"{label.strip()}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
