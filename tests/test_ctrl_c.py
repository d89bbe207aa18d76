"""Ctrl-C outside a training's `fit`: while data loads, a model is built, figures or an animation
are drawn, runs are listed or a study is checked, every command ends with one line and exit code
130, and leaves no temporary file behind. (Ctrl-C inside `fit` is test_reliability's: the run is
marked interrupted and the exit code is 128+N.)"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kexp import cli
from kexp.digits import data
from kexp.storage import runs
from kexp.views import plots

from helpers import TINY_TRAIN_ARGS, kexp_env, start_kexp

TRAIN = ["train", *TINY_TRAIN_ARGS, "--epochs", "1"]


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def half_written_then_ctrl_c(figure, path, **kwargs):
    """matplotlib's savefig that is stopped half way through writing its file."""
    Path(path).write_bytes(b"\x89PNG half")
    raise KeyboardInterrupt


def temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".tmp" in path.name]


STAGES = {
    # case: (module, attribute replaced, arguments after the command's run folder options)
    "train while data loads": (data, "load", TRAIN),
    "train while the model is built": ("kexp.training.trainer", "build_model", TRAIN),
    "resume while data loads": (data, "load", ["train", "--resume", "RUN"]),
    "visualize while a figure is saved": ("matplotlib.figure.Figure", "savefig",
                                          ["visualize", "RUN"]),
    "animate while frames are drawn": (plots, "tile", ["animate", "RUN"]),
    "runs while statuses are read": (runs, "read_status", ["runs"]),
    "compare while its data is checked": (data, "load", ["compare", "--inits", "zeros",
                                                         "--seeds", "0", "--epochs", "1"]),
}


@pytest.mark.parametrize("case", list(STAGES))
def test_ctrl_c_ends_any_command_with_one_line_and_exit_130(interrupted_run, tmp_path,
                                                            monkeypatch, capsys, case):
    import importlib

    module, attribute, arguments = STAGES[case]
    run_dir = shutil.copytree(interrupted_run, tmp_path / "runs" / interrupted_run.name)
    status_before = (run_dir / runs.STATUS_FILE).read_text()
    if isinstance(module, str):
        path, _, owner = module.rpartition(".")
        module = (getattr(importlib.import_module(path), owner) if owner[0].isupper()
                  else importlib.import_module(module))
    monkeypatch.setattr(module, attribute, half_written_then_ctrl_c if attribute == "savefig"
                        else ctrl_c)
    arguments = [str(run_dir) if argument == "RUN" else argument for argument in arguments]

    code = cli.main([*arguments, "--runs-dir", str(tmp_path / "runs")])

    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 130 and lines == [f"kexp {arguments[0]}: interrupted (Ctrl-C)"], lines
    assert not temporaries(tmp_path)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [run_dir.name]
    assert (run_dir / runs.STATUS_FILE).read_text() == status_before
    assert not (run_dir / runs.LOCK_FILE).exists()


MOMENT_SEED_VARIABLE = "KEXP_TEST_CTRL_C_SEED"


@pytest.mark.parametrize("command", [TRAIN, ["visualize", "RUN"]])
def test_a_real_ctrl_c_at_a_random_moment_never_prints_a_traceback(trained_run, tmp_path,
                                                                   command):
    """SIGINT while Python, TensorFlow or matplotlib start, data loads or a model is built:
    one line and exit 130, no temporary file. The moment is drawn from a seed that every
    failure message names; set the variable to that seed to replay the same moment."""
    seed = int(os.environ.get(MOMENT_SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    moment = random.Random(seed).uniform(0.1, 1.0)  # before either command can have ended
    runs_dir = tmp_path / "runs"
    run_dir = shutil.copytree(trained_run, runs_dir / trained_run.name)
    command = [str(run_dir) if argument == "RUN" else argument for argument in command]
    process = start_kexp(*command, "--runs-dir", runs_dir, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=kexp_env(TF_CPP_MIN_LOG_LEVEL="3"))
    time.sleep(moment)
    still_running = process.poll() is None
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    context = (f"SIGINT {moment:.2f} s after the start (replay with "
               f"{MOMENT_SEED_VARIABLE}={seed}): {err[-2000:]}")
    assert still_running, f"the command had ended before the signal; {context}"
    assert process.returncode == 130, context
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, context
    # one line, or the two of a run interrupted in `fit`
    assert "interrupted (Ctrl-C)" in err or "interrupted by SIGINT" in err, context
    assert not temporaries(runs_dir), context
