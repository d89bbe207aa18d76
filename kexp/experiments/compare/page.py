"""The initializer study's static page, index.html: its figures (drawn by study_figures), the
answer as measured (verdict), the summary table and links to every run. It is self-contained
(relative links, inline CSS, no script, no network), so it opens from a file or a CI artifact.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from kexp.experiments import animate
from kexp.experiments.compare import plan, verdict
from kexp.storage import atomic, runs

RUN_FIGURES = (runs.CONV1_FIGURE, animate.ANIMATION_FILE, runs.FEATURE_MAPS_FIGURE,
               runs.TOP_PATCHES_FIGURE, runs.OPTIMAL_INPUTS_FIGURE, runs.FORCES_FIGURE,
               runs.HISTOGRAMS_FIGURE, runs.CONV2_SUMMARY_FIGURE, runs.CONV2_FIGURE)
RUN_FILES = (runs.CONFIG_FILE, runs.STATUS_FILE, runs.HISTORY_FILE)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _link(compare_dir: Path, target: Path, text: str) -> str:
    href = Path(os.path.relpath(target, compare_dir)).as_posix()
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _table(rows: list[dict], columns) -> str:
    head = "".join(f"<th>{html.escape(column.replace('_', ' '))}</th>" for column in columns)
    body = []
    for row in rows:
        css = "" if row["status"] == runs.STATUS_FINISHED else ' class="failed"'
        body.append(f"<tr{css}>" + "".join(f"<td>{_cell(row[c])}</td>" for c in columns)
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _run_section(compare_dir: Path, row: dict, log_path: Path | None) -> str:
    title = f"{row['initializer']}, seed {row['seed']}: {row['status']}"
    parts = [f"<section><h3>{html.escape(title)}</h3>"]
    if row["reason"]:
        parts.append(f"<p class=\"reason\">{html.escape(row['reason'])}</p>")
    links = []
    run_dir = compare_dir / row["run"] if row["run"] else None
    if run_dir is not None:
        if (run_dir / runs.PAGE_FILE).exists():  # every filter of the run, card by card
            links.append(_link(compare_dir, run_dir / runs.PAGE_FILE, "run page"))
        links.append(_link(compare_dir, run_dir, "run folder"))
        links += [_link(compare_dir, run_dir / name, name) for name in RUN_FILES
                  if (run_dir / name).exists()]
    if log_path is not None and log_path.exists():
        links.append(_link(compare_dir, log_path, "training log"))
    parts.append(f"<p>{' · '.join(links)}</p>")
    if run_dir is not None:
        figures = [run_dir / runs.FIGURES_DIR / name for name in RUN_FIGURES]
        for path, css in zip(figures[:2], ("grids", "animation")):
            if path.exists():
                source = Path(os.path.relpath(path, compare_dir)).as_posix()
                parts.append(f'<img class="{css}" src="{html.escape(source)}" '
                             f'alt="{html.escape(path.name)} of {html.escape(title)}" '
                             'loading="lazy">')
        more = [_link(compare_dir, p, p.name) for p in figures[2:] if p.exists()]
        if more:
            parts.append(f"<p>more figures: {' · '.join(more)}</p>")
        missing = [path.name for path in figures if not path.exists()]
        if missing:
            parts.append(f"<p class=\"reason\">missing from {runs.FIGURES_DIR}/: "
                         f"{html.escape(', '.join(missing))}</p>")
    parts.append("</section>")
    return "".join(parts)


STYLE_SHEET = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1700px;
       padding: 0 1em; color: #222; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td:first-child { text-align: left; }
tr.failed td { background: #fde8e8; } .reason { color: #a00; font-family: monospace; }
section { border-top: 1px solid #ddd; margin-top: 1em; }
section img { vertical-align: middle; margin-right: 1%; }
section img.grids { width: 64%; } section img.animation { width: 30%; }
.setup { color: #555; }
"""

HOW_TO_READ = """
<p>Left: each initializer's 32 conv1 filters (3x3, one tile each) before and after training, all
on one colour scale (red positive, blue negative, white zero; logarithmic beyond the linear
band, so a tiny and a huge initializer can sit side by side), and the change, on one linear
scale for all rows. <b>Distinct filters</b> counts filters that differ beyond a tolerance: 32
means every filter is its own feature, 1 means all 32 are copies (the symmetry problem). Right,
top: training accuracy and loss per epoch, one line per seed. Middle: how far each filter
moved, relative to where it started.
Bottom: how much the filters look like oriented edge detectors, before (hollow) and after
(filled). Each run below links its own figures (with its own colour scale) and an animation of
its filters through training.</p>
"""


def write_index(compare_dir: Path, study: plan.Study, measured: list[tuple[dict, dict]],
                seconds: float, log_paths: dict) -> Path:
    """index.html: the figure, the summary table and every run, with relative links only.
    `log_paths` maps (initializer, seed) to the training's log."""
    rows = [row for row, _ in measured]
    failed = [row for row in rows if row["status"] != runs.STATUS_FINISHED]
    setup = (f"{study.model} on {study.data}, {study.epochs} epoch(s), seeds "
             f"{', '.join(map(str, study.seeds))}; {len(rows)} trainings "
             f"({len(failed)} failed), {study.jobs} at a time, {seconds:.0f} s in all; "
             f"written {runs.now_iso()}")
    figure = compare_dir / plan.FIGURE_FILE
    body = [f"<h1>Does the starting point matter?</h1><p class=\"setup\">"
            f"{html.escape(setup)}</p>", HOW_TO_READ]
    if figure.exists():
        body.append(f'<a href="{plan.FIGURE_FILE}"><img src="{plan.FIGURE_FILE}" '
                    'alt="conv1 filters before and after per initializer, curves, change and '
                    'edge-likeness"></a>')
    sentences = verdict.verdict(rows, study.target_accuracy, study.epochs)
    body.append("<h2>The answer, as measured</h2><ul class=\"verdict\">"
                + "".join(f"<li>{html.escape(sentence)}</li>" for sentence in sentences)
                + "</ul>")
    epochs_figure = compare_dir / plan.EPOCHS_FIGURE_FILE
    if epochs_figure.exists():
        body.append(f'<a href="{plan.EPOCHS_FIGURE_FILE}"><img src="{plan.EPOCHS_FIGURE_FILE}" '
                    'alt="validation accuracy, relative change, distinct filters and '
                    'edge-likeness per epoch, a line per seed"></a>')
    body.append("<h2>Summary</h2>")
    body.append(_table(rows, [c for c in plan.SUMMARY_COLUMNS if c not in ("run", "reason")]))
    body.append(f"<p>{_link(compare_dir, compare_dir / plan.SUMMARY_CSV, plan.SUMMARY_CSV)}"
                f" · {_link(compare_dir, compare_dir / plan.SUMMARY_JSON, plan.SUMMARY_JSON)}"
                "</p><h2>Every run</h2>")
    body += [_run_section(compare_dir, row, log_paths.get((row["initializer"], row["seed"])))
             for row in rows]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>kexp compare: does the starting point matter?</title>"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<style>{STYLE_SHEET}</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
    return atomic.write_bytes_atomic(compare_dir / plan.INDEX_FILE, page.encode())
