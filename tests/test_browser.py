"""The study's index.html in a real headless browser (Debian's chromium): it loads from a file
with no console messages, and its screenshot shows the figures (the red and blue of the filter
grids), not a blank or broken page. Skipped where chromium is not installed; .ci/run installs it.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from kexp import runs
from kexp.experiments.compare import command, plan

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
def compare_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    study = plan.Study(initializers=["glorot_uniform", "zeros"], seeds=[0], epochs=1,
                       train_samples=300, jobs=2, runs_dir=str(root / "runs"))
    return command.run_study(study, say=lambda line: None)


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
    # animation are shown, beside the study's own figure.
    shown = [path for path in compare_dir.glob(f"{plan.RUNS_SUBDIR}/*/{runs.FIGURES_DIR}/*")
             if path.name in (runs.CONV1_FIGURE, runs.EVOLUTION_FIGURE)]
    assert len(shown) == 4
    assert result.stdout.count("<img") == 1 + len(shown)


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
