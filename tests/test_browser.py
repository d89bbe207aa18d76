"""The study's index.html and a run's index.html in a real headless browser (Debian's chromium):
each loads from a file with no console messages, its screenshot shows the figures (the red and
blue of the filter grids), not a blank or broken page, and the run page's pictures all load and
its cards sort, filter and enlarge. Skipped where chromium is not installed; .ci/run installs it.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest

from kexp.experiments.compare import plan
from kexp.storage import runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--enable-logging=stderr", "--v=0")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get "
                       "install chromium; .ci/run does that before make test)"),
]


@pytest.fixture(scope="module")
def compare_dir(tiny_study):
    """The session's tiny study (tests/conftest.py): three finished trainings, one failed."""
    return tiny_study.compare_dir


def finished_runs(compare_dir) -> int:
    return sum(runs.read_status(run).get("status") == runs.STATUS_FINISHED
               for run in (compare_dir / plan.RUNS_SUBDIR).iterdir() if run.is_dir())


@pytest.fixture(scope="module")
def index_url(compare_dir):
    return (compare_dir / plan.INDEX_FILE).resolve().as_uri()


def _chromium(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    """One headless chromium run with a fresh profile; its log goes to stderr."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
                          capture_output=True, text=True, timeout=120)


def test_page_loads_without_console_errors(compare_dir, index_url, tmp_path):
    result = _chromium(tmp_path, "--dump-dom", index_url)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    assert "Does the starting point matter?" in result.stdout
    # What the run folders hold, not what the page says: each finished run's filter grids and
    # animation are shown, beside the study's own two figures.
    shown = [path for path in compare_dir.glob(f"{plan.RUNS_SUBDIR}/*/{runs.FIGURES_DIR}/*")
             if path.name in (runs.CONV1_FIGURE, runs.EVOLUTION_FIGURE)]
    shown += [compare_dir / name for name in (plan.FIGURE_FILE, plan.EPOCHS_FIGURE_FILE)
              if (compare_dir / name).exists()]
    assert len(shown) == 2 * finished_runs(compare_dir) + 2 == 8
    assert result.stdout.count("<img") == len(shown)


def test_screenshot_shows_the_figures(index_url, tmp_path):
    from PIL import Image

    screenshot = tmp_path / "page.png"
    result = _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1400,1100",
                       "--hide-scrollbars", index_url)
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=int)
    assert pixels.std() > 20  # not a blank page
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    reddish = ((red - blue > 80) & (red - green > 60)).sum()
    bluish = ((blue - red > 80) & (blue > 100)).sum()
    assert reddish > 2000 and bluish > 2000, (reddish, bluish)  # the RdBu filter grids


def test_the_study_page_and_its_run_pages_link_each_other(compare_dir):
    index = (compare_dir / plan.INDEX_FILE).read_text(encoding="utf-8")
    pages = sorted(compare_dir.glob(f"{plan.RUNS_SUBDIR}/*/{runs.PAGE_FILE}"))
    assert len(pages) == finished_runs(compare_dir) == 3  # each finished one wrote its page
    for page in pages:
        assert f'href="{plan.RUNS_SUBDIR}/{page.parent.name}/{runs.PAGE_FILE}"' in index
        assert f'href="../../{plan.INDEX_FILE}"' in page.read_text(encoding="utf-8")


# Run in the run page after it loaded: how many pictures loaded, then the cards' order after
# "most changed first", the cards left by "only dead filters", and a card after a click.
RUN_PAGE_PROBE = """<script>
window.addEventListener('load', function () {
  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll('#cards > article'));
  }
  function choose(element, value) {
    if (element.type === 'checkbox') element.checked = value; else element.value = value;
    element.dispatchEvent(new Event('change', {bubbles: true}));
  }
  var images = Array.prototype.slice.call(document.images);
  var found = {images: images.length, cards: cards().length, broken: images.filter(
    function (image) { return !(image.complete && image.naturalWidth > 0); }).length};
  choose(document.getElementById('sort'), 'change:desc');
  found.changes = cards().map(function (card) { return parseFloat(card.dataset.change); });
  choose(document.querySelector('input[name=dead]'), true);
  found.shown = cards().filter(function (card) { return !card.hidden; }).map(
    function (card) { return card.id; });
  document.getElementById('conv1-7').click();
  found.enlarged = document.getElementById('conv1-7').className;
  var probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify(found);
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def run_with_a_dead_filter(trained_run, tmp_path_factory):
    """A copy of the trained run whose conv1 filter 5 is zeroed (kernel and bias), its page
    written again."""
    from kexp.views import run_page

    run_dir = shutil.copytree(trained_run, tmp_path_factory.mktemp("page") / trained_run.name)
    path = run_dir / runs.KERNELS_DIR / runs.snapshot_name(runs.FINAL)
    with np.load(path) as snapshot:
        final = {name: snapshot[name] for name in snapshot.files}
    final["conv1"][..., 5] = 0.0
    final["conv1/bias"][5] = 0.0
    np.savez(path, **final)
    run_page.write_run_page(run_dir)
    return run_dir


def test_the_run_page_works_in_the_browser(run_with_a_dead_filter, tmp_path):
    """Every picture loads, every card is there, and sorting, filtering and enlarging work."""
    page = (run_with_a_dead_filter / runs.PAGE_FILE).read_text(encoding="utf-8")
    probe = run_with_a_dead_filter / "probe.html"  # beside the page: the same relative links
    probe.write_text(page.replace("</body>", RUN_PAGE_PROBE + "</body>"), encoding="utf-8")
    result = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if ":CONSOLE" in line] == []
    found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>',
                                               result.stdout).group(1)))
    with np.load(run_with_a_dead_filter / runs.KERNELS_DIR / "final.npz") as final:
        filters = 32 + final["conv2"].shape[-1]  # conv1's 32 and all of conv2's
    assert found["cards"] == filters
    assert found["images"] > filters and found["broken"] == 0
    changes = [value for value in found["changes"] if not math.isnan(value)]
    assert changes == sorted(changes, reverse=True) and len(changes) == filters
    assert "conv1-5" in found["shown"] and "conv1-7" not in found["shown"]
    assert "big" in found["enlarged"].split()


def test_the_run_page_screenshot_shows_the_filters(run_with_a_dead_filter, tmp_path):
    from PIL import Image

    screenshot = tmp_path / "run_page.png"
    result = _chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1400,2000",
                       "--hide-scrollbars", (run_with_a_dead_filter / runs.PAGE_FILE).as_uri())
    assert result.returncode == 0 and screenshot.exists(), result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if ":CONSOLE" in line] == []
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=int)
    assert pixels.std() > 20  # not a blank page
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    reddish = ((red - blue > 80) & (red - green > 60)).sum()
    bluish = ((blue - red > 80) & (blue > 100)).sum()
    assert reddish > 2000 and bluish > 2000, (reddish, bluish)  # the coloured weights
