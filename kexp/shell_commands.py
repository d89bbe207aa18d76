"""The commands kexp suggests to a user (redraw the figures, resume a run), as lines that work
when pasted into a shell.

Every command kexp prints is made by `kexp_command` here, so each runs as printed: from any
folder, with the run's --runs-dir, with spaces or quotes in a path, and with the Python that has
kexp installed (`python` only where that is this interpreter, never one an activated venv would
have put first). No Keras here: the suggestions are printed by light commands too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from kexp.config import DEFAULTS


def kexp_command(*args: str | os.PathLike) -> str:
    """A `python -m kexp ...` line: every argument quoted for a POSIX shell, and this
    interpreter's path unless `python` on PATH is this interpreter."""
    on_path = shutil.which("python")
    same = on_path is not None and os.path.abspath(on_path) == os.path.abspath(sys.executable)
    return shlex.join(["python" if same else sys.executable, "-m", "kexp", *map(str, args)])


def run_arguments(run_dir: str | os.PathLike) -> list[str]:
    """`[--runs-dir DIR] RUN` naming `run_dir` for any command, from the folder it is in."""
    run_dir = Path(run_dir)
    if run_dir.parent.resolve() == Path(DEFAULTS.runs_dir).resolve():
        return [str(run_dir)]
    return ["--runs-dir", str(run_dir.parent), str(run_dir)]


def resume_command(run_dir: str | os.PathLike) -> str:
    """The command that continues `run_dir` (printed on Ctrl-C and kept in status.json)."""
    *runs_dir, run = run_arguments(run_dir)
    return kexp_command("train", *runs_dir, "--resume", run)


def visualize_command(run_dir: str | os.PathLike) -> str:
    """The command that redraws the figures of `run_dir`."""
    return kexp_command("visualize", *run_arguments(run_dir))


def explain_command(run_dir: str | os.PathLike) -> str:
    """The command that computes the views of `run_dir` and redraws its figures."""
    return kexp_command("explain", *run_arguments(run_dir))
