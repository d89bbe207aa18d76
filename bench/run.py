"""make bench: how fast kexp is against what a user would otherwise run, measured in one run.

Contenders alternate within each repeat (their order rotates from repeat to repeat) and every
number is reported as the median with its min-max, because this CPU is shared and noisy.
Sections (bench/suite.py runs them in this order):

- speed: kexp's overhead over a plain `model.fit` of the same recipe on kexp's own input
  pipelines, the time inside kexp's callbacks, three ways of writing the resume checkpoint,
  throughput and utilisation of a float32 matmul's GFLOP/s, and the PyTorch peer
  (bench/contenders.py, bench/checkpoint_options.py, bench/measure_speed.py);
- startup: `kexp --help` and plotting (bench/measure_startup.py);
- training: `python -m kexp train` as a user runs it, peak RSS, `--deterministic`
  (bench/measure_training.py);
- accuracy: seconds until the held-out digits reach 98.0 % and 98.5 % for the default recipe and
  the old 5-epoch one (bench/time_to_accuracy.py).

Writes bench/results.json, prints the Markdown table (bench/report.py) and, after a full run,
writes that table into docs/performance.md between its bench markers and copies results.json
to bench/results-readme.json, the numbers that page quotes.
Usage: .venv/bin/python bench/run.py [--repeats N] [--skip-torch] [--tta-seeds 0 1 2] ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# Run as a script: bench/ is on sys.path already; the repository goes first, so this checkout's
# kexp is the one measured, and TensorFlow's start-up lines stay quiet.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kexp.training import tf_startup  # noqa: E402

tf_startup.quiet_logs()

import report  # noqa: E402
from common import (PERFORMANCE_PAGE, README_RESULTS_FILE, REPEATS, REPO_ROOT,  # noqa: E402
                    RESULTS_FILE, SECTIONS, SEED, TRAIN_SAMPLES)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS,
                        help="repeats of the alternating speed contenders")
    parser.add_argument("--train-samples", type=int, default=TRAIN_SAMPLES,
                        help="digits the speed repeats draw from (kexp's validation_fraction "
                        "of them go to validation)")
    parser.add_argument("--tta-seeds", type=int, nargs="+", default=[SEED],
                        help="seeds of the time-to-accuracy trainings (each recipe per seed)")
    parser.add_argument("--skip-torch", action="store_true",
                        help="leave out the PyTorch peer (also left out without its venv)")
    parser.add_argument("--data", help="a full mnist.npz or IDX folder for the DATA=path row")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="measure only these (a partial run never writes docs/performance.md)")
    parser.add_argument("--no-readme", action="store_true",
                        help="leave docs/performance.md and bench/results-readme.json as they are")
    parser.add_argument("--table-only", action="store_true",
                        help="print the table of the last bench/results.json without measuring")
    parser.add_argument("--rewrite-readme", action="store_true",
                        help="rewrite docs/performance.md's table from bench/results-readme.json "
                        "without measuring (after a change to the table's wording)")
    args = parser.parse_args(argv)
    for name, values, lowest in (("--repeats", [args.repeats], 1),
                                 ("--train-samples", [args.train_samples], 1),
                                 ("--tta-seeds", args.tta_seeds, 0)):
        if min(values) < lowest:
            parser.error(f"Invalid value for `{name}`: {min(values)}. Expected whole numbers "
                         f">= {lowest}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table_only or args.rewrite_readme:
        source = README_RESULTS_FILE if args.rewrite_readme else RESULTS_FILE
        table_text = report.table(json.loads(source.read_text(encoding="utf-8")))
        if args.rewrite_readme:
            report.update_readme(PERFORMANCE_PAGE, table_text)
        print(table_text)
        return 0
    import suite  # TensorFlow loads here, only when measuring

    results = suite.measure(args)
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    table_text = report.table(results)
    print(table_text)
    print(f"\nraw numbers: {RESULTS_FILE.relative_to(REPO_ROOT)}")
    if not args.no_readme and set(args.sections) == set(SECTIONS):
        report.update_readme(PERFORMANCE_PAGE, table_text)
        shutil.copyfile(RESULTS_FILE, README_RESULTS_FILE)
        print(f"docs/performance.md's table rewritten; its numbers: "
              f"{README_RESULTS_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
