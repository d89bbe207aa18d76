"""runs/<id>/index.html: one page per run that follows every filter from its random draw to what
it became, one card per filter of conv1 and conv2 (kexp.views.filter_cards).

At the top: what was trained and how (model, initializer, seed, data, epochs), the test accuracy
under its own name, the training and validation curves, where the time went, and links to the
run's files and figures. The page is one self-contained file: its pictures are inline PNGs, its
style and its little script (sorting, filtering, a click enlarges a card) are inline too, it
loads nothing from anywhere and needs no server; without the script every card still shows.
Written from the run folder alone (numpy, matplotlib's colour maps, PIL; no TensorFlow) after
the figures of `kexp train`, and again by `kexp visualize`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

import numpy as np

from kexp import shell_commands
from kexp.storage import atomic, runs
from kexp.views import card_images, filter_cards
from kexp.views.filter_facts import RunFacts, gather
from kexp.views.run_replay import RunReplay

CURVES_INCHES = (7.2, 2.4)
CURVES_DPI = 90


def _curves_png(history: list[dict]) -> str | None:
    """Accuracy and loss per epoch, training and validation, as a PNG data: URI."""
    if not history:
        return None
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    from kexp.views.drawing import SAVE_RC

    figure = Figure(figsize=CURVES_INCHES)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.88, wspace=0.25)
    epochs = [row["epoch"] for row in history]
    for ax, metric in zip(figure.subplots(1, 2), ("accuracy", "loss")):
        drawn = [np.nan]
        for prefix, label, colour in (("", "training", "tab:blue"),
                                      ("val_", "validation", "tab:orange")):
            values = [row.get(prefix + metric, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, color=colour, marker="." if len(epochs) < 30 else None,
                        label=f"{label} {metric}")
                drawn += values
        ax.set_xlabel("epoch")
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        low, high = np.nanmin(drawn + [np.inf]), np.nanmax(drawn + [-np.inf])
        if metric == "loss" and high > 10 * low > 0:  # a log scale where it spans a decade,
            ax.set_yscale("log")  # with plain tick labels (log ones parse mathtext: 0.6 s)
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
            ax.yaxis.set_minor_formatter(NullFormatter())
    buffer = io.BytesIO()
    with matplotlib.rc_context(SAVE_RC):
        figure.savefig(buffer, format="png", dpi=CURVES_DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def curves_png(history: list[dict], replay: RunReplay | None = None) -> str | None:
    """The curves of `history` (_curves_png), drawn once per `replay` for one history: the end
    of a training draws them before its figures, while the optimal inputs' ascent starts on a
    thread (the figures would otherwise wait for it at their end), and its page reuses them."""
    if replay is None:
        return _curves_png(history)
    return replay.kept(("curves", repr(history)), lambda: _curves_png(history))


def study_of(run_dir: Path) -> Path | None:
    """The study whose training `run_dir` is (it lies in <study>/runs/), or None."""
    study = run_dir.parent.parent
    if run_dir.parent.name == runs.STUDY_RUNS_DIR and (study / runs.STUDY_FILE).is_file():
        return study
    return None


def _link(run_dir: Path, target: Path, text: str) -> str:
    href = Path(os.path.relpath(target, run_dir)).as_posix()
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _accuracy(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _setup(facts: RunFacts) -> str:
    """What was trained and how well: a table of plain facts, each named for what it is."""
    config = facts.recorded.get("config", {})
    data = facts.recorded.get("data", {})
    status, history = facts.status, facts.history
    last = history[-1] if history else {}
    test = status.get("test_accuracy")
    test_text = (f"<b>{_accuracy(test)}</b> (the {data.get('used_test_samples', '')} held-out "
                 "test digits, evaluated once, after training)" if test is not None else
                 "not measured: the test digits are evaluated once, at the end of a "
                 f"finished run, and this run is {html.escape(str(status.get('status')))}")
    rows = [("model", config.get("model")),
            ("initializer", config.get("init") if not config.get("init_conv2") else
             f"conv1 {config.get('init')}, conv2 {config.get('init_conv2')}"),
            ("seed", config.get("seed")),
            ("data", data.get("description") or data.get("source")),
            ("epochs", f"{len(history)} of {config.get('epochs', '?')} planned"),
            ("status", status.get("status"))]
    cells = [f"<tr><th>{name}</th><td>{html.escape(str(value))}</td></tr>"
             for name, value in rows]
    cells.append(f"<tr><th>test accuracy</th><td>{test_text}</td></tr>")
    if last.get("val_accuracy") is not None:
        cells.append(f"<tr><th>validation accuracy</th><td>{_accuracy(last['val_accuracy'])} "
                     "(last epoch; digits held out of training, seen after every epoch)</td></tr>")
    if last.get("accuracy") is not None:
        cells.append(f"<tr><th>training accuracy</th><td>{_accuracy(last['accuracy'])} (last "
                     "epoch, on the training digits)</td></tr>")
    return f'<table class="setup">{"".join(cells)}</table>'


def _times(facts: RunFacts, page_seconds: float) -> str:
    """Where the run's time went (status.json, history.csv) and this page's own."""
    status = facts.status
    epochs = sum(row.get("seconds", 0.0) for row in facts.history)
    parts = [("training and the test", status.get("seconds")),
             (f"of which the {len(facts.history)} training epochs", epochs),
             ("then the figures and the optimal inputs, found beside them",
              status.get("views_seconds")),
             ("of which the optimal inputs", status.get("optimal_inputs_seconds")),
             ("and the figures", status.get("figures_seconds")), ("this page", page_seconds)]
    items = "".join(f"<li>{name}: {value:.1f} s</li>" for name, value in parts
                    if isinstance(value, (int, float)))
    return f"<h2>Where the time went</h2><ul>{items}</ul>"


def _links(run_dir: Path) -> str:
    files = [_link(run_dir, run_dir / name, name) for name in
             (runs.CONFIG_FILE, runs.STATUS_FILE, runs.HISTORY_FILE, runs.MODEL_FILE)
             if (run_dir / name).exists()]
    figures_dir = run_dir / runs.FIGURES_DIR
    figures = sorted(figures_dir.glob("*.png")) if figures_dir.is_dir() else []
    animation = figures_dir / runs.EVOLUTION_FIGURE
    command = shell_commands.kexp_command("animate", *shell_commands.run_arguments(run_dir))
    shown = (_link(run_dir, animation, "animation of conv1 through training")
             if animation.exists() else
             f"no animation yet; draw it with: <code>{html.escape(command)}</code>")
    figure_links = " · ".join(_link(run_dir, path, path.name) for path in figures) or (
        "none drawn yet; draw them with: "
        f"<code>{html.escape(shell_commands.visualize_command(run_dir))}</code>")
    return (f"<p>files: {' · '.join(files)}</p><p>figures: {figure_links}</p>"
            f"<p>{shown}</p>")


def _legend(facts: RunFacts, scales: dict[str, dict]) -> str:
    bars = []
    for name, layer_scales in scales.items():
        bars.append(f'<li><span class="bar" style="background:'
                    f'{card_images.gradient_css(card_images.WEIGHT_CMAP)}"></span> {name} '
                    f"weight, -{layer_scales['weight']:.3g} (blue) .. 0 (white) .. "
                    f"+{layer_scales['weight']:.3g} (red)</li>")
        if "map" in layer_scales:
            bars.append(f'<li><span class="bar" style="background:'
                        f'{card_images.gradient_css(card_images.ACTIVATION_CMAP)}"></span> '
                        f"{name} output, 0 (black) .. {layer_scales['map']:.3g}</li>")
    return ("<details open><summary>How to read a card</summary><p>Each card is one filter, "
            "numbered as in the run's npz arrays (its index on the last axis). A conv1 card "
            "prints its 3x3 numbers before and after training in their cells, then shows the "
            "filter after every saved epoch. A conv2 card shows its 3x3 kernel on each input "
            "channel. Then: the kernel's norm through training, how far it moved, its "
            "<i>optimal input</i> (the image that excites it most), the test-digit patches it "
            "answers most, its maps of a few test digits, and the <i>push</i> of each digit "
            "class (minus its part of the gradient: kexp.training.forces). Flags say in words "
            "what a filter is: <b>dead</b> (its output is never positive on the test digits: it "
            "passes nothing on and gets no gradient), <b>brightness detector</b> (its optimal "
            "input is mostly even ink: it answers how much ink, not where), <b>copy</b> (equal "
            "to another filter within 0.1%). Every colour scale is shared by all cards of a "
            f"layer, before and after:</p><ul class=\"legend\">{''.join(bars)}</ul>"
            "<p>Click a card to enlarge it (Escape closes).</p></details>")


CONTROLS = ("<form id=\"controls\" hidden>sort by <select id=\"sort\">{sorts}</select> "
            "layer <select id=\"layer\"><option value=\"\">all</option>{layers}</select> "
            "{flags} <span id=\"shown\"></span></form>")

SCRIPT = """
(function () {
  var box = document.getElementById('cards'), cards = Array.prototype.slice.call(box.children);
  var form = document.getElementById('controls'), shown = document.getElementById('shown');
  form.hidden = false;
  function value(card, key) {
    if (key === 'filter') return cards.indexOf(card);
    var text = card.dataset[key.replace(/-(\\w)/g, function (m, c) { return c.toUpperCase(); })];
    return text === '' || text === undefined ? NaN : parseFloat(text);
  }
  function apply() {
    var parts = document.getElementById('sort').value.split(':'), key = parts[0];
    var sign = parts[1] === 'desc' ? -1 : 1, layer = document.getElementById('layer').value;
    var only = Array.prototype.slice.call(form.querySelectorAll('input:checked'));
    var sorted = cards.slice().sort(function (a, b) {
      var x = value(a, key), y = value(b, key);
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
      return sign * (x - y) || cards.indexOf(a) - cards.indexOf(b);
    });
    var count = 0;
    sorted.forEach(function (card) {
      var keep = (!layer || card.dataset.layer === layer) && only.every(function (box) {
        return card.dataset[box.name] === '1'; });
      card.hidden = !keep;
      count += keep;
      box.appendChild(card);
    });
    shown.textContent = count + ' of ' + cards.length + ' filters';
  }
  form.addEventListener('change', apply);
  cards.forEach(function (card) {
    card.addEventListener('click', function () { card.classList.toggle('big'); });
  });
  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') cards.forEach(function (card) { card.classList.remove('big'); });
  });
  apply();
})();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1800px; padding: 0 1em;
       color: #222; line-height: 1.35; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin: 0.8em 0 0.3em; }
.top { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
table.setup th { text-align: left; padding-right: 1em; font-weight: 600; }
.missing { background: #fff4e0; border-left: 4px solid #e08a00; padding: 0.3em 1em; }
.legend { list-style: none; padding: 0; } .bar { display: inline-block; width: 8em;
          height: 0.8em; border: 1px solid #999; vertical-align: middle; }
#controls { position: sticky; top: 0; background: #fff; padding: 0.5em 0; z-index: 2;
            border-bottom: 1px solid #ddd; }
#cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
         gap: 10px; margin-top: 0.8em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.4em 0.6em; font-size: 0.8em;
        cursor: zoom-in; background: #fff; }
.card.big { grid-column: 1 / -1; cursor: zoom-out; font-size: 1em; display: flex;
            flex-wrap: wrap; align-items: flex-start; column-gap: 2em; }
.card.big > h3, .card.big > .flags { flex-basis: 100%; }
.card.big img, .card.big svg { zoom: 2; }
.card h3 { margin: 0.1em 0; font-size: 1.1em; }
.card img { image-rendering: pixelated; max-width: 100%; vertical-align: top; }
.card figure { margin: 0.3em 0; } figcaption { color: #555; }
.flags { list-style: none; padding: 0; margin: 0.2em 0; }
.flag { display: inline-block; border-radius: 3px; padding: 0 0.4em; margin: 0 0.3em 0.2em 0; }
.flag.dead { background: #333; color: #fff; } .flag.brightness { background: #ffe08a; }
.flag.copy { background: #cfe3ff; } .flag.still { background: #eee; }
.pair { display: flex; gap: 1em; }
table.kernel { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.kernel td { width: 3.2em; height: 1.9em; text-align: center; border: 1px solid #fff; }
table.kernel caption { color: #555; }
table.numbers th { text-align: left; font-weight: normal; color: #555; padding-right: 0.6em; }
.spark { margin: 0.2em 0; } .spark svg { vertical-align: middle; margin-left: 0.4em; }
table.numbers td { white-space: nowrap; }
svg.bars text { font-size: 9px; fill: #555; }
"""


def render(facts: RunFacts, page_seconds: float | None = None, started: float | None = None,
           replay: RunReplay | None = None) -> str:
    """The page's HTML; every picture inline. `replay`: where curves drawn before are kept."""
    run_dir = facts.run_dir
    scales = {name: filter_cards.layer_scales(layer) for name, layer in facts.layers.items()}
    cards = [filter_cards.card(layer, index, scales[name], facts)
             for name, layer in facts.layers.items() for index in range(layer.count)]
    curves = curves_png(facts.history, replay)
    if page_seconds is None:
        page_seconds = time.perf_counter() - started if started is not None else 0.0
    study = study_of(run_dir)
    back = (f"<p>part of the study {_link(run_dir, study / runs.PAGE_FILE, study.name)}: its "
            "page compares this run with the others</p>" if study is not None else "")
    missing = "".join(f"<li>{html.escape(note)}</li>" for note in facts.missing)
    counts = ", ".join(f"{layer.count} of {name}" for name, layer in facts.layers.items())
    sorts = "".join(f'<option value="{key}:{order}">{html.escape(words)}, '
                    f"{'most' if order == 'desc' else 'least'} first</option>"
                    for key, words in filter_cards.SORT_KEYS.items()
                    for order in (("asc",) if key == "filter" else ("desc", "asc")))
    sorts = sorts.replace(", least first</option>", "</option>", 1)  # filter number, in order
    flags = "".join(f'<label><input type="checkbox" name="{flag}"> only {words}</label> '
                    for flag, words in filter_cards.FLAGS.items())
    layers = "".join(f'<option value="{name}">{name}</option>' for name in facts.layers)
    body = [f"<h1>Run {html.escape(run_dir.name)}: every filter from its random draw to what "
            "it became</h1>", back, '<div class="top"><div>', _setup(facts),
            _times(facts, page_seconds), _links(run_dir), "</div>",
            f'<img src="{curves}" alt="training and validation curves">' if curves else
            "<p>no epochs in history.csv yet: no curves</p>", "</div>"]
    if missing:
        body.append(f'<div class="missing"><p>What this page cannot show:</p><ul>{missing}'
                    "</ul></div>")
    body += [f"<h2>The filters: {counts or 'none'}</h2>", _legend(facts, scales),
             CONTROLS.format(sorts=sorts, layers=layers, flags=flags),
             f'<div id="cards">{"".join(cards)}</div>']
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>kexp run {html.escape(run_dir.name)}</title>"
            '<link rel="icon" href="data:,">'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body)
            + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def write_run_page(run_dir: Path, replay: RunReplay | None = None) -> Path:
    """Write (or rewrite) the run's index.html from its folder; returns its path. A file the
    run lacks or cannot read is named on the page, never raised. `replay`: the one the run's
    figures were just drawn from (plots.render_run), so nothing is read or replayed twice."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    page = render(gather(run_dir, replay), started=started, replay=replay)
    return atomic.write_bytes_atomic(run_dir / runs.PAGE_FILE, page.encode())
