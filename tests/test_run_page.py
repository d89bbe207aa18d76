"""The run page (runs/<id>/index.html): written at the end of a training and by `kexp visualize`
(its path the last line of both), one card per filter numbered as in the npz arrays, the numbers
printed as the snapshots hold them, flags that say which filters are dead or copies, a note of
what a run lacks instead of a broken picture, and the links between a study and its runs. The
page in a real browser: tests/test_browser.py."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from kexp import cli
from kexp.storage import runs
from kexp.views import run_page

from helpers import TINY_TRAINING


def card(page: str, layer: str, index: int) -> str:
    found = re.search(rf'<article class="card" id="{layer}-{index}".*?</article>', page, re.S)
    assert found, f"no card {layer}-{index}"
    return found.group(0)


def printed_kernel(card_html: str, caption: str) -> np.ndarray:
    """The 3x3 numbers a conv1 card prints in the cells of its `caption` table."""
    table = re.search(rf"<caption>{caption}</caption><tbody>(.*?)</tbody>", card_html).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    return np.array([[float(cell) for cell in re.findall(r"<td[^>]*>([-0-9.]+)</td>", row)]
                     for row in rows])


def flags(card_html: str) -> list[str]:
    return re.findall(r'<li class="flag [a-z]+">(.*?)</li>', card_html)


def kernels(run_dir, label: str) -> dict[str, np.ndarray]:
    with np.load(run_dir / runs.KERNELS_DIR / runs.snapshot_name(label)) as snapshot:
        return {name: snapshot[name] for name in snapshot.files}


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A copy of the session's trained run, in a runs folder of its own, to change."""
    return shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name)


def test_training_writes_the_page_with_a_card_per_filter(trained_run):
    page = (trained_run / runs.PAGE_FILE).read_text(encoding="utf-8")
    final = kernels(trained_run, runs.FINAL)
    assert page.count('<article class="card"') == 32 + final["conv2"].shape[-1]
    assert "http://" not in page and "https://" not in page
    status = runs.read_status(trained_run)
    assert re.search(rf"<th>test accuracy</th><td><b>{status['test_accuracy']:.4f}</b>", page)
    for name in (runs.CONFIG_FILE, runs.STATUS_FILE, runs.HISTORY_FILE,
                 f"{runs.FIGURES_DIR}/{runs.CONV1_FIGURE}"):
        assert f'href="{name}"' in page and (trained_run / name).is_file()
    assert status["page_seconds"] > 0  # what the training spent on this page (make bench)


def test_card_7_prints_the_numbers_of_filter_7(trained_run):
    """Before and after, to the printed precision (2 decimals), as the snapshots hold them."""
    page = (trained_run / runs.PAGE_FILE).read_text(encoding="utf-8")
    seventh = card(page, "conv1", 7)
    for label, caption in ((runs.INITIAL, "before"), (runs.FINAL, "after")):
        expected = kernels(trained_run, label)["conv1"][:, :, 0, 7]
        np.testing.assert_allclose(printed_kernel(seventh, caption), expected, atol=0.005 + 1e-9)
    assert "conv1 filter 7</h3>" in seventh


def test_flags_dead_copies_and_brightness_detectors(run_copy):
    """A zeroed filter is dead, two equal filters are copies of each other, and a filter whose
    optimal input is an even grey is a brightness detector."""
    final = kernels(run_copy, runs.FINAL)
    final["conv1"][..., 5] = 0.0
    final["conv1/bias"][5] = 0.0
    final["conv1"][..., 11] = final["conv1"][..., 9]
    final["conv1/bias"][11] = final["conv1/bias"][9]
    np.savez(run_copy / runs.KERNELS_DIR / runs.snapshot_name(runs.FINAL), **final)
    optimal_path = run_copy / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE
    with np.load(optimal_path) as archive:
        optimal = {key: archive[key] for key in archive.files}
    optimal["images/after/conv2"][3] = 0.4
    np.savez(optimal_path, **optimal)

    page = run_page.write_run_page(run_copy).read_text(encoding="utf-8")

    assert any(flag.startswith("dead: never positive") for flag in flags(card(page, "conv1", 5)))
    assert any(flag.startswith("brightness detector") for flag in flags(card(page, "conv2", 3)))
    assert "copy of filter 11" in flags(card(page, "conv1", 9))
    assert "copy of filter 9" in flags(card(page, "conv1", 11))
    assert not any("copy" in flag for flag in flags(card(page, "conv1", 10)))
    assert re.search(r'id="conv1-5"[^>]*data-dead="1"', page)
    assert re.search(r'id="conv1-9"[^>]*data-copy="1"', page)


@pytest.mark.parametrize("removed", [[runs.VIEWS_DIR], [f"{runs.VIEWS_DIR}/{runs.FORCES_FILE}"]])
def test_a_run_without_views_gets_a_page_that_says_what_is_missing(interrupted_run, tmp_path,
                                                                  removed):
    """The interrupted run has no optimal inputs (computed at the end); an older run has no
    views at all. Every card is still there, with what the run has, and no broken picture."""
    run_dir = shutil.copytree(interrupted_run, tmp_path / interrupted_run.name)
    for name in removed:
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    page = run_page.write_run_page(run_dir).read_text(encoding="utf-8")

    missing = re.search(r'<div class="missing">(.*?)</div>', page, re.S).group(1)
    assert runs.OPTIMAL_INPUTS_FILE in missing and runs.FORCES_FILE in missing
    assert (runs.PROBE_DIGITS_FILE in missing) == (removed == [runs.VIEWS_DIR])
    assert "test accuracy</th><td>not measured" in page and "interrupted" in page
    assert page.count('<article class="card"') == 32 + kernels(run_dir, runs.INITIAL)[
        "conv2"].shape[-1]
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)


def test_a_damaged_view_is_named_on_the_page(run_copy):
    (run_copy / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).write_bytes(b"not an npz")
    page = run_page.write_run_page(run_copy).read_text(encoding="utf-8")
    assert re.search(r"No optimal inputs: Cannot read .*optimal_inputs\.npz", page)
    assert "optimal input before and after" not in page  # no picture of what is not there


def test_the_page_path_is_the_last_line_of_train_and_visualize(run_copy, monkeypatch, capsys):
    from kexp.training import trainer

    (run_copy / runs.PAGE_FILE).unlink()
    assert cli.main(["visualize", "--runs-dir", str(run_copy.parent), run_copy.name]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == f"kexp: the run's page: {run_copy / runs.PAGE_FILE}"
    assert (run_copy / runs.PAGE_FILE).is_file()

    monkeypatch.setattr(trainer, "train", lambda config: run_copy)
    assert cli.main(["train", "--runs-dir", str(run_copy.parent)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == last


@pytest.mark.slow
def test_a_page_that_fails_does_not_fail_the_run(tmp_path, monkeypatch, capsys):
    from kexp import shell_commands
    from kexp.config import TrainConfig
    from kexp.training import trainer

    def fail(run_dir, *rest):
        raise RuntimeError("no room for pictures")

    monkeypatch.setattr(run_page, "write_run_page", fail)
    run_dir = trainer.train(TrainConfig(**TINY_TRAINING, epochs=1, runs_dir=str(tmp_path)),
                            verbose=0)
    err = capsys.readouterr().err
    assert "no room for pictures" in err and shell_commands.visualize_command(run_dir) in err
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED and "page_seconds" not in status
    assert not (run_dir / runs.PAGE_FILE).exists()


def test_curves_drawn_before_the_page_are_reused_for_the_same_history_only(run_copy,
                                                                           monkeypatch):
    from matplotlib.figure import Figure

    from kexp.views.run_replay import RunReplay

    replay, history = RunReplay(run_copy), runs.read_history(run_copy)
    curves = run_page.curves_png(history, replay)  # as the end of a training draws them
    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, *rest, **options: saved.append(rest))
    page = run_page.write_run_page(run_copy, replay).read_text(encoding="utf-8")
    assert f'<img src="{curves}"' in page and saved == []  # not drawn again
    changed = [dict(history[0], accuracy=history[0]["accuracy"] / 2)]
    run_page.curves_png(changed, replay)
    assert len(saved) == 1  # another history: drawn anew


def test_a_run_of_a_study_links_back_to_the_study_page(trained_run, tmp_path):
    study = tmp_path / "compare-1"
    run_dir = shutil.copytree(trained_run, study / runs.STUDY_RUNS_DIR / trained_run.name)
    alone = run_page.write_run_page(run_dir).read_text(encoding="utf-8")
    (study / runs.STUDY_FILE).write_text(json.dumps({}), encoding="utf-8")
    in_study = run_page.write_run_page(run_dir).read_text(encoding="utf-8")
    assert 'href="../../index.html"' in in_study and "../../index.html" not in alone
