"""kexp.Run as a notebook uses it: opened, read attribute by attribute, shown by IPython's display
formatter (what Jupyter calls on a cell's value), on a finished, an interrupted, a crashed and a
damaged run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter

import kexp
from kexp.errors import KexpError, RunError
from kexp.storage import runs

DEAD_PID = 2**22 + 12345  # beyond pid_max on this kind of machine
VOID_TAGS = {"img", "br", "hr", "meta", "link", "input"}


def shown(value) -> dict:
    """What a notebook cell ending in `value` displays, by MIME type. IPython swallows an
    exception inside _repr_html_ (it prints it), so a failing card is an absent text/html."""
    data, _ = DisplayFormatter().format(value)
    return data


class CheckedHTML(HTMLParser):
    """Parses HTML, checking that every element is closed in order, and collects the text and
    every src and href."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.open, self.sources, self.links, self.text = [], [], [], []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed: {self.open}"

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.sources += [attributes["src"]] if "src" in attributes else []
        self.links += [attributes["href"]] if "href" in attributes else []
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open.pop() == tag, (tag, self.open)

    def handle_data(self, data):
        self.text.append(data)


def check_card(run: kexp.Run) -> CheckedHTML:
    """The run's card: valid HTML whose pictures are inline and whose links stay inside the run
    folder (the page link is relative to the current folder, where a notebook's kernel runs)."""
    card = CheckedHTML(shown(run)["text/html"])
    assert all(source.startswith("data:image/png;base64,") for source in card.sources)
    for link in card.links:
        assert ":" not in link and not link.startswith("/"), link
        assert Path(os.path.realpath(link)).is_relative_to(os.path.realpath(run)), link
    return card


def test_a_finished_run_reads_back_every_attribute(trained_run, tiny_config_values):
    run = kexp.open_run(trained_run)
    assert run == kexp.open_run(trained_run.name, runs_dir=trained_run.parent) == trained_run
    # path-like, as the folder `kexp.train` returned before
    assert os.fspath(run) == str(run) == str(trained_run) and Path(run) == trained_run
    assert run / runs.CONFIG_FILE == trained_run / runs.CONFIG_FILE
    assert (run.name, run.parent, run.exists()) == (trained_run.name, trained_run.parent, True)

    assert run.config == kexp.TrainConfig(runs_dir=str(trained_run.parent), **tiny_config_values)
    recorded = json.loads((trained_run / runs.STATUS_FILE).read_text(encoding="utf-8"))
    assert run.status == recorded["status"] == "finished"
    assert run.status_record["test_accuracy"] == recorded["test_accuracy"]
    history = run.history
    assert history["epoch"].tolist() == [1, 2]
    assert {"loss", "accuracy", "val_accuracy"} <= set(history)
    assert all(len(column) == 2 for column in history.values())

    assert run.snapshots[0] == "initial" and run.snapshots[-1] == "final"
    assert "epoch_002" in run.snapshots
    initial, final = run.kernels("initial"), run.kernels("final")
    with np.load(trained_run / "kernels" / "initial.npz") as raw:
        np.testing.assert_array_equal(initial["conv1"], raw["conv1"])
    assert initial["conv1"].shape == (3, 3, 1, 32)
    assert not np.array_equal(initial["conv1"], final["conv1"])
    assert run.biases("final").keys() == final.keys()
    assert run.biases("final")["conv1"].shape == (32,)
    with pytest.raises(RunError, match=r"^Invalid value for `label`: 'epoch_009'\. Expected one "
                                       r"of the snapshots of '.*': initial, .*epoch_002, final\.$"):
        run.kernels("epoch_009")

    figures = run.figures
    assert {"conv1_before_after", "histograms", "top_patches", "forces"} <= set(figures)
    assert figures == {path.stem: path for path in (trained_run / "figures").glob("*.png")}
    views = run.views
    assert set(views) == {"probe_digits", "feature_maps", "top_patches", "optimal_inputs",
                          "forces"}
    images, labels = views["probe_digits"]
    assert views["feature_maps"]["after"]["conv1"].shape[:1] == images.shape[:1] == labels.shape
    assert views["top_patches"]["before"]["conv2"].scores.shape[0] == final["conv2"].shape[-1]
    assert views["optimal_inputs"]["after"]["conv1"]["images"].shape[0] == 32
    assert views["forces"]["gradients"]["conv1"].shape[2:] == (3, 3, 1, 32)
    page = trained_run / runs.PAGE_FILE
    assert run.page == (page if page.is_file() else None)

    model = run.model()
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.numpy(), final["conv1"])


def test_reading_a_run_imports_no_tensorflow(trained_run):
    code = ("import sys, kexp\n"
            f"run = kexp.open_run({str(trained_run)!r})\n"
            "facts = (run.config, run.status, run.history, run.kernels('final'), "
            "run.biases('initial'), run.figures, run.views, run.page, run._repr_html_(), "
            "kexp.list_runs(run.parent)._repr_html_())\n"
            "print('TF', 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert "TF False False" in result.stdout, result.stderr[-3000:]


def test_the_card_shows_the_run_and_its_conv1_picture(trained_run):
    run = kexp.open_run(trained_run)
    card = check_card(run)
    text = " ".join(card.text)
    for fact in ("finished", "convnet_dense", "glorot_uniform", "2 of 2",
                 f"{run.status_record['test_accuracy']:.4f}"):
        assert fact in text
    assert len(card.sources) == 1  # the conv1 picture
    assert [Path(link).name for link in card.links] == (
        [runs.PAGE_FILE] if run.page else [])
    assert "http" not in shown(run)["text/html"]


def test_an_interrupted_run_shows_what_it_has(interrupted_run):
    run = kexp.open_run(interrupted_run)
    assert run.status == "interrupted"
    assert run.snapshots == ["initial", "epoch_001", "interrupted"]
    assert run.history["epoch"].tolist() == [1]
    assert run.kernels("interrupted")["conv1"].shape == (3, 3, 1, 32)
    with pytest.raises(RunError, match="Expected one of the snapshots of .*: initial, epoch_001, "
                                       "interrupted"):
        run.kernels("final")
    facts = run.facts()
    assert (facts["status"], facts["epochs"], facts["test accuracy"]) == (
        "interrupted", "1 of 2", "not tested")
    assert len(check_card(run).sources) == 1  # conv1 before and at the interruption
    assert not (interrupted_run / runs.MODEL_FILE).exists()  # saved when training ends
    with pytest.raises(KexpError, match=r"model\.keras'\. Expected an existing \.keras file"):
        run.model()


def test_a_crashed_run_reads_as_crashed(trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / trained_run.name)
    status = json.loads((run_dir / runs.STATUS_FILE).read_text())
    (run_dir / runs.STATUS_FILE).write_text(json.dumps({**status, "status": "running",
                                                        "pid": DEAD_PID}))
    run = kexp.open_run(run_dir)
    assert run.status == "crashed"
    assert f"process {DEAD_PID} is gone" in run.status_record["reason"]
    assert run.facts()["status"] == "crashed" and "crashed" in check_card(run).text


def test_a_damaged_run_opens_and_fails_per_attribute_with_the_clis_errors(trained_run,
                                                                           tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / trained_run.name)
    final = run_dir / "kernels" / "final.npz"
    final.write_bytes(final.read_bytes()[:200])  # truncated by a full disk
    (run_dir / runs.CONFIG_FILE).unlink()
    run = kexp.open_run(run_dir)  # nothing read yet
    with pytest.raises(RunError, match=r"config\.json': it is missing\. Expected"):
        run.config
    with pytest.raises(RunError, match=r"^Cannot read '.*final\.npz': "):
        run.kernels("final")
    with pytest.raises(RunError, match=r"^Cannot read '.*(config\.json|final\.npz)'"):
        run.views  # replayed from the newest snapshot, for the model config.json names
    assert run.status == "finished" and run.kernels("initial")["conv1"].shape == (3, 3, 1, 32)
    assert "final" in run.snapshots and run.history["epoch"].tolist() == [1, 2]
    card = check_card(run)  # still shows, saying what cannot be read
    assert card.sources == [] and "unreadable: Cannot read" in " ".join(card.text)
    (run_dir / runs.STATUS_FILE).write_text("{")
    with pytest.raises(RunError, match=r"status\.json': not valid JSON"):
        run.status


def test_list_runs_is_newest_first_and_shows_as_one_table(trained_run, tmp_path):
    for name in ("20260101-000000-glorot_uniform-old", "20260102-000000-glorot_uniform-new"):
        shutil.copytree(trained_run, tmp_path / "runs" / name)
    listed = kexp.list_runs(tmp_path / "runs")
    assert [run.name for run in listed] == ["20260102-000000-glorot_uniform-new",
                                           "20260101-000000-glorot_uniform-old"]
    assert all(isinstance(run, kexp.Run) for run in listed)
    table = CheckedHTML(shown(listed)["text/html"])
    assert " ".join(table.text).count("finished") == 2 and table.sources == []
    assert kexp.open_run(runs_dir=tmp_path / "runs") == listed[0]  # the newest
    assert kexp.list_runs(tmp_path / "none") == []


def test_open_run_refuses_what_is_no_run_as_the_cli_does(tmp_path):
    with pytest.raises(RunError, match=r"^No runs in '.*'\. Train one first"):
        kexp.open_run(runs_dir=tmp_path)
    with pytest.raises(RunError, match=r"^Invalid value for `RUN`: 'nope' is not a run folder"):
        kexp.open_run("nope", runs_dir=tmp_path)


def test_resume_returns_the_run(interrupted_run, tmp_path):
    run_dir = shutil.copytree(interrupted_run, tmp_path / "runs" / interrupted_run.name)
    run = kexp.resume(kexp.open_run(run_dir), verbose=0)  # a Run is a path for resume too
    assert isinstance(run, kexp.Run) and run == run_dir
    assert run.status == "finished" and run.snapshots[-1] == "final"
    assert run.history["epoch"].tolist() == [1, 2]
