"""What several test files share: `python -m kexp` in a subprocess as a user runs it (or pastes
it), `kexp` in this process, the tiny settings that train in seconds, the stop signals' default
dispositions for a child, and the checks of a run folder's files. (Fixtures are in conftest.py.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_SECONDS = 300

# A training of a few seconds on the offline digits, as TrainConfig values and as the same
# options of `kexp train`; each test adds its own epochs (and seed).
TINY_TRAINING = dict(data="mnist-5k", train_samples=256, test_samples=64)
TINY_TRAIN_ARGS = [word for key, value in TINY_TRAINING.items()
                   for word in (f"--{key.replace('_', '-')}", str(value))]
# A study of two one-epoch trainings, as kexp.experiments.compare.plan.Study values.
TINY_STUDY = dict(initializers=["glorot_uniform", "zeros"], seeds=[0], epochs=1,
                  train_samples=256)


def kexp_env(**variables: str) -> dict[str, str]:
    """This process's environment with TensorFlow's start-up lines quiet, and `variables`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **variables}


def kexp_argv(*args) -> list[str]:
    """`python -m kexp ARGS` with this interpreter."""
    return [sys.executable, "-m", "kexp", *map(str, args)]


def run_kexp(*args, cwd: Path = REPO_ROOT, env: dict | None = None,
             timeout: float = SUBPROCESS_SECONDS, **options) -> subprocess.CompletedProcess:
    """Run `kexp ARGS` in a subprocess to its end; its output as text."""
    return subprocess.run(kexp_argv(*args), cwd=cwd, env=kexp_env() if env is None else env,
                          capture_output=True, text=True, timeout=timeout, **options)


def run_python(code: str, *args, cwd: Path = REPO_ROOT, timeout: float = SUBPROCESS_SECONDS,
               **options) -> subprocess.CompletedProcess:
    """Run `python -c CODE ARGS` (this interpreter) in a subprocess to its end; output as text."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, **options)


HOLD_LOCK = """
import sys
from kexp.storage import run_lock
with run_lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


@contextlib.contextmanager
def lock_held_elsewhere(run_dir: Path, dies_holding_it: bool = False):
    """Another process that holds the lock of `run_dir` (kexp.storage.run_lock) while the block
    runs; then it lets go, or is killed holding it (SIGKILL: its lock file stays behind)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], cwd=REPO_ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if dies_holding_it:
            holder.kill()
        holder.stdin.close()
        holder.wait(timeout=60)


def default_stop_signals() -> None:
    """In the child: the default disposition of the stop signals, whatever this test run
    inherited (a background job of a non-interactive shell starts with SIGINT ignored)."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def start_kexp(*args, cwd: Path = REPO_ROOT, env: dict | None = None,
               **options) -> subprocess.Popen:
    """Start `kexp ARGS` in the background with the stop signals' default dispositions, as from
    a terminal; `options` go to Popen (where its output goes)."""
    return subprocess.Popen(kexp_argv(*args), cwd=cwd, env=kexp_env() if env is None else env,
                            preexec_fn=default_stop_signals, **options)


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `command` as a user who pasted it into a POSIX shell in `cwd`, without an activated
    venv (this interpreter's folder is not on PATH)."""
    path = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                           if Path(folder) != Path(sys.executable).parent)
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                          timeout=SUBPROCESS_SECONDS, env=kexp_env(PATH=path))


def after(text: str, marker: str) -> str:
    """What follows `marker` on the first line of `text` that has it (a printed hint)."""
    return next(line.split(marker, 1)[1] for line in text.splitlines() if marker in line)


def lines(text: str) -> list[str]:
    """The lines of `text` that are not blank."""
    return [line for line in text.splitlines() if line.strip()]


def error_line(capsys, *args: str) -> tuple[int, str]:
    """Exit code and the one line on stderr of `kexp ARGS` (in this process)."""
    from kexp import cli

    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(lines(err)) == 1, err
    return code, err


def kexp_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """`kexp ARGS` through kexp.cli.main in this process (what `python -m kexp` runs, without
    paying a TensorFlow start-up per case): exit code and output as a finished process's."""
    from kexp import cli

    try:
        code = cli.main(list(map(str, args)))
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def copy_run(run_dir: Path, runs_dir: Path, name: str | None = None) -> Path:
    """A copy of `run_dir` in `runs_dir`, under its own name or `name`."""
    return Path(shutil.copytree(run_dir, runs_dir / (name or run_dir.name)))


def without_figures(run_dir: Path) -> Path:
    """`run_dir` (a copy) as if trained with --no-figures: a resume of it ends without drawing
    the figures and the page, for a test that reads neither. Returns `run_dir`."""
    from kexp.storage import atomic, runs

    recorded = runs.read_json(run_dir / runs.CONFIG_FILE)
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE,
                             {**recorded, "config": {**recorded["config"], "figures": False}})
    return Path(run_dir)


def is_temporary(path: Path) -> bool:
    """An atomic writer's temporary sibling (.name.XXXX.tmp[.suffix])."""
    return path.name.startswith(".") and ".tmp" in path.name


def assert_every_file_loads(run_dir: Path, hard_kill: bool = False) -> list[str]:
    """Open every file of a run folder with the reader kexp uses for it; returns their names.
    A temporary file fails the check, unless the run was killed (`hard_kill`): then its writer
    had no chance to remove it, and it is passed over with a lock file nobody holds."""
    from kexp.network.saving import load_model
    from kexp.storage import files, runs

    loaded = []
    for path in sorted(run_dir.rglob("*")):
        if is_temporary(path) and not hard_kill:
            pytest.fail(f"a temporary file was left behind: {path}")
        if path.is_dir() or is_temporary(path) or path.name == runs.LOCK_FILE:
            continue  # the lock file of a killed process: the next writer takes it over
        if path.name == runs.STATUS_FILE:
            runs.read_status(run_dir)  # read_json, and its fields checked
        elif path.suffix == ".json":
            runs.read_json(path)
        elif path.suffix == ".npz" and path.parent.name == runs.KERNELS_DIR:
            arrays = runs.load_kernels(path)  # never unpickles
            assert arrays and all(array.dtype == np.float32 for array in arrays.values()), path
        elif path.suffix == ".npz":
            assert files.read_npz(path, runs.RunError), path  # a checkpoint
        elif path.suffix == ".keras":
            load_model(path)
        elif path.suffix == ".csv":
            runs.read_history(run_dir)
        elif path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG"), path
        elif path.name == runs.PAGE_FILE:
            assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>"), path
        else:
            pytest.fail(f"unexpected file in the run folder: {path}")
        loaded.append(str(path.relative_to(run_dir)))
    return loaded
