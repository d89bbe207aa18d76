"""Reliability under Ctrl-C and the other stop signals, a hard kill, concurrency and reruns.

Each test drives the real command line (`python -m kexp ...` in a subprocess, as a user would) on
a few hundred real digits, and checks what the user relies on: a run folder that is never left
half-written, that renders, and that resumes to the kernels of an uninterrupted run. Trainings
that serve several tests are shared: four started at once are also the reproducibility runs,
the stop signals' uninterrupted reference and the run whose TensorFlow start-up lines are
checked; one process resumes the three runs that the stop signals interrupted. What is read
after a run (listing, drawing, a resume after a hard kill) is read through `kexp.cli.main`.
(Bad input is test_bad_inputs', model files that would run code test_unsafe_models'.)
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from kexp import cli, shell_commands
from kexp.storage import runs

from helpers import (SUBPROCESS_SECONDS, TINY_TRAIN_ARGS, assert_every_file_loads,
                     default_stop_signals, is_temporary, kexp_env, start_kexp)

# Enough epochs that a kill within 4 s of status.json lands while training is still going on.
LONG_EPOCHS = "40"


def start_logged(log_dir: Path, name: str, *args: str, env: dict | None = None
                 ) -> subprocess.Popen:
    """Start `python -m kexp ...` in the background; output goes to files (a full pipe would
    block the child)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.out", "w") as stdout, open(log_dir / f"{name}.err", "w") as err:
        return start_kexp(*args, stdout=stdout, stderr=err, env=env)


def output_of(log_dir: Path, name: str) -> str:
    return (log_dir / f"{name}.out").read_text() + (log_dir / f"{name}.err").read_text()


def wait_for(predicate, process: subprocess.Popen, what: str, timeout: float = 180.0):
    """Poll `predicate` until it returns something truthy; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"kexp exited ({process.returncode}) before {what}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def only_run(runs_dir: Path) -> Path | None:
    found = [path for path in runs_dir.iterdir() if path.is_dir()] if runs_dir.is_dir() else []
    assert len(found) <= 1, found
    return found[0] if found else None


def history_rows(run_dir: Path) -> int:
    try:
        return len(runs.read_history(run_dir))
    except (OSError, ValueError):  # the header is being written
        return 0


# --- 2. Interruption and resume ------------------------------------------------------------


# Four trainings of the same settings started at once into one runs folder: two --deterministic
# (the uninterrupted reference of the stop-signal tests, and its repeat), two not (one of them
# with TensorFlow's C++ logging fully on). Each test reads what it needs of them.
SETTINGS = [*TINY_TRAIN_ARGS, "--epochs", "2", "--seed", "4"]
AT_ONCE = {"deterministic_a": ["--deterministic"], "deterministic_b": ["--deterministic"],
           "default_a": [], "default_logging": []}
LOGGING_ON = "default_logging"


@pytest.fixture(scope="module")
def four_at_once(tmp_path_factory):
    """{name: (process, run folder, output)} once all four ended; started at first use, so
    they train while the first test that needs them does its own work."""
    folder = tmp_path_factory.mktemp("four-at-once")
    runs_dir = folder / "runs"
    processes = {name: start_logged(folder, name, "train", *SETTINGS, *extra, "--runs-dir",
                                    str(runs_dir), env=kexp_env(TF_CPP_MIN_LOG_LEVEL="0")
                                    if name == LOGGING_ON else None)
                 for name, extra in AT_ONCE.items()}

    def ended() -> dict:
        for name, process in processes.items():
            assert process.wait(timeout=SUBPROCESS_SECONDS) == 0, output_of(folder, name)
        by_pid = {runs.read_status(path)["pid"]: path for path in runs_dir.iterdir()
                  if path.is_dir()}
        return {name: (process, by_pid.get(process.pid), output_of(folder, name))
                for name, process in processes.items()}

    yield ended
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def kernels_of(run_dir: Path, label: str) -> dict:
    return runs.load_kernels(run_dir / runs.KERNELS_DIR / f"{label}.npz")


def identical(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        first[layer].tobytes() == second[layer].tobytes() for layer in first)


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
# The settings of the --deterministic runs above; no test reads the resumed runs' figures.
SIGNAL_SETTINGS = [*SETTINGS, "--deterministic", "--no-figures"]
SIGNAL_EPOCHS = 2
# `python -m kexp train ...` as a user runs it, with one extra Keras callback that holds the
# training after its first epoch until the test says go: the signal then always lands in the
# middle of the run, however loaded the machine is (a handshake, not a guessed delay).
PAUSED_TRAIN = """
import pathlib, sys, time
import keras
from kexp import cli
from kexp.training import trainer

paused, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

class HoldAfterTheFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            paused.write_text("paused")
            while not go.exists():
                time.sleep(0.01)

real_train = trainer.train
trainer.train = lambda config, **options: real_train(
    config, extra_callbacks=[HoldAfterTheFirstEpoch()], **options)
sys.exit(cli.main(sys.argv[3:]))
"""
# `python -m kexp train --resume RUN --runs-dir DIR` for each RUN in turn, in one process (one
# TensorFlow start-up; the runs are all --deterministic, which is for the whole process).
RESUME_EACH = """
import sys, traceback
from kexp import cli

runs_dir, *run_dirs = sys.argv[1:]
for run_dir in run_dirs:
    try:
        code = cli.main(["train", "--resume", run_dir, "--runs-dir", runs_dir])
    except BaseException:
        traceback.print_exc()
        code = "raised"
    print(f"resumed {run_dir}: exit {code}", flush=True)
"""


class Stopped(NamedTuple):
    code: int  # the exit code of the stopped training
    output: str
    interrupted: Path  # a copy of its run folder as the signal left it
    run_dir: Path  # the run folder, since resumed


@pytest.fixture(scope="module")
def stopped_by_signals(tmp_path_factory) -> tuple[dict, subprocess.Popen, str]:
    """Each stop signal sent to its own training held after its first epoch; then one process
    resumes the three runs. ({signal name: Stopped}, that process, its output)"""
    folder = tmp_path_factory.mktemp("stop-signals")
    runs_dir = folder / "runs"  # never the default `runs` of the child's folder
    stopped = {}
    for name in STOP_SIGNALS:
        paused, go, log_dir = folder / f"{name}.paused", folder / f"{name}.go", folder / name
        log_dir.mkdir()
        with open(log_dir / "train.out", "w") as out, open(log_dir / "train.err", "w") as err:
            process = subprocess.Popen(
                [sys.executable, "-c", PAUSED_TRAIN, str(paused), str(go), "train",
                 *SIGNAL_SETTINGS, "--runs-dir", str(runs_dir / name)], cwd=log_dir,
                env=kexp_env(), stdout=out, stderr=err, preexec_fn=default_stop_signals)
        try:
            wait_for(paused.exists, process, "the end of the first epoch")
            run_dir = only_run(runs_dir / name)
            process.send_signal(getattr(signal, name))
            go.touch()
            code = process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        copy = Path(shutil.copytree(run_dir, folder / "as interrupted" / name / run_dir.name))
        stopped[name] = Stopped(code, output_of(log_dir, "train"), copy, run_dir)
    with open(folder / "resume.out", "w") as out:
        resumed = subprocess.Popen(
            [sys.executable, "-c", RESUME_EACH, str(runs_dir),
             *(str(each.run_dir) for each in stopped.values())], cwd=folder, env=kexp_env(),
            stdout=out, stderr=subprocess.STDOUT)
    resumed.wait(timeout=SUBPROCESS_SECONDS)
    return stopped, resumed, (folder / "resume.out").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", STOP_SIGNALS)
def test_stop_signal_leaves_an_interrupted_run_that_renders_and_resumes_bit_identically(
        four_at_once, stopped_by_signals, capsys, signal_name):
    """Ctrl-C, a scheduler's SIGTERM and a closed terminal's SIGHUP all end a run the same way:
    kernels of that moment, status `interrupted` naming the signal with a resume command, exit
    code 128+N; the resumed run ends with the kernels of an uninterrupted one (--deterministic)."""
    number = getattr(signal, signal_name)
    by_signal, resumed, resume_output = stopped_by_signals
    code, output, interrupted, run_dir = by_signal[signal_name]
    assert code == 128 + number, output
    assert f"interrupted by {signal_name}" in output

    status = runs.read_status(interrupted)
    completed = history_rows(interrupted)
    assert status["status"] == runs.STATUS_INTERRUPTED
    assert signal_name in status["reason"] and status["epochs_completed"] == completed
    assert status["resume"] == shell_commands.resume_command(run_dir)
    assert 1 <= completed < SIGNAL_EPOCHS
    kernels = interrupted / runs.KERNELS_DIR
    for label in ("initial", f"epoch_{completed:03d}", "interrupted"):
        assert runs.load_kernels(kernels / f"{label}.npz")["conv1"].shape == (3, 3, 1, 32)
    assert not (kernels / "final.npz").exists()
    initial_bytes = (kernels / "initial.npz").read_bytes()

    assert cli.main(["visualize", interrupted.name, "--runs-dir", str(interrupted.parent)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert (interrupted / runs.FIGURES_DIR / "conv1_before_after.png").stat().st_size > 0

    assert f"resumed {run_dir}: exit 0" in resume_output, resume_output[-3000:]
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED
    assert "reason" not in status and status["pid"] == resumed.pid
    assert [row["epoch"] for row in runs.read_history(run_dir)] == \
        list(range(1, SIGNAL_EPOCHS + 1))
    labels = [label for label, _ in runs.snapshot_sequence(run_dir)]
    assert labels == ["initial", *[f"epoch_{e:03d}" for e in range(1, SIGNAL_EPOCHS + 1)],
                      "final"]  # the first attempt's interrupted.npz is kept out of it:
    kernels = run_dir / runs.KERNELS_DIR
    assert (kernels / "interrupted_attempt_1.npz").is_file()
    assert (kernels / "initial.npz").read_bytes() == initial_bytes
    assert (run_dir / runs.MODEL_FILE).is_file()
    assert not (run_dir / "checkpoint").exists()

    uninterrupted = kernels_of(four_at_once()["deterministic_a"][1], "final")
    final = runs.load_kernels(kernels / "final.npz")
    for layer in ("conv1", "conv2"):
        assert final[layer].tobytes() == uninterrupted[layer].tobytes(), layer


# --- 3. Hard kill --------------------------------------------------------------------------


KILL_SEED_VARIABLE = "KEXP_TEST_KILL_SEED"


@pytest.mark.slow
def test_sigkill_at_a_random_moment_leaves_only_loadable_files_and_a_crashed_run(tmp_path,
                                                                                 capsys):
    """The moment is drawn from a seed that every failure message names; set the variable to
    that seed to replay the same moment. (What is read after the kill is read in this process;
    no test reads the resumed run's figures.)"""
    seed = int(os.environ.get(KILL_SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    seconds_after_start = random.Random(seed).uniform(0.0, 4.0)
    runs_dir = tmp_path / "runs"
    process = start_logged(tmp_path, "train", "train", *TINY_TRAIN_ARGS, "--epochs",
                           LONG_EPOCHS, "--no-figures", "--runs-dir", str(runs_dir))
    run_dir = wait_for(lambda: (lambda r: r if r and (r / runs.STATUS_FILE).exists() else None)(
        only_run(runs_dir)), process, "the run's status.json")
    time.sleep(seconds_after_start)
    epochs_seen = history_rows(run_dir)  # finished before the kill (more may finish meanwhile)
    process.kill()
    process.wait(timeout=60)
    context = (f"killed {seconds_after_start:.2f} s after status.json appeared, {epochs_seen} "
               f"epochs logged; replay with "
               f"{KILL_SEED_VARIABLE}={seed}")

    try:
        loaded = assert_every_file_loads(run_dir, hard_kill=True)
    except Exception as error:
        raise AssertionError(f"{context}: {error!r}") from error
    assert {"config.json", "status.json"} <= set(loaded), (context, loaded)
    assert runs.read_status(run_dir)["status"] == runs.STATUS_CRASHED, context
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    listing = capsys.readouterr().out
    line = next(line for line in listing.splitlines() if run_dir.name in line)
    assert " crashed " in line, (context, listing)
    code = cli.main(["visualize", run_dir.name, "--runs-dir", str(runs_dir)])  # or one line
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, (context, err)

    code = cli.main(["train", "--resume", run_dir.name, "--runs-dir", str(runs_dir)])
    resumed = capsys.readouterr()
    assert code == 0, (context, resumed.err[-2000:])
    # docs/run-folder.md: a SIGKILL loses at most the epoch in progress, or, killed within
    # milliseconds of an epoch's end, that epoch too: the resume starts at most one epoch before
    # those logged.
    resumed_after = re.search(r"(after epoch (\d+)|starts again from epoch 1)", resumed.out)
    assert resumed_after, (context, resumed.out[-2000:])
    epochs_kept = int(resumed_after.group(2) or 0)
    assert epochs_kept >= epochs_seen - 1, (context, epochs_kept)
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    assert [row["epoch"] for row in runs.read_history(run_dir)] == \
        list(range(1, int(LONG_EPOCHS) + 1)), context


# --- 4. Concurrency, reproducibility, TensorFlow's start-up lines ----------------------------


@pytest.mark.slow
def test_four_trainings_at_once_make_four_complete_run_folders(four_at_once):
    started = four_at_once()
    run_dirs = sorted(path for path in next(iter(started.values()))[1].parent.iterdir()
                      if path.is_dir())
    assert len(run_dirs) == 4
    assert sorted(run_dir for _, run_dir, _ in started.values()) == run_dirs
    for run_dir in run_dirs:
        assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
        assert [row["epoch"] for row in runs.read_history(run_dir)] == [1, 2]
        assert [label for label, _ in runs.snapshot_sequence(run_dir)] == \
            ["initial", "epoch_001", "epoch_002", "final"]
        assert (run_dir / runs.MODEL_FILE).is_file()
        assert len(list((run_dir / runs.FIGURES_DIR).glob("*.png"))) >= 1
        assert not [path for path in run_dir.rglob("*") if is_temporary(path)]


@pytest.mark.slow
def test_same_seed_repeats_initial_kernels_and_deterministic_repeats_final_ones(four_at_once):
    run_dirs = {name: run_dir for name, (_, run_dir, _) in four_at_once().items()}
    kernels = {name: {label: kernels_of(run_dirs[name], label) for label in ("initial", "final")}
               for name in ("default_a", "deterministic_a", "deterministic_b")}
    assert identical(kernels["default_a"]["initial"], kernels["deterministic_a"]["initial"])
    assert identical(kernels["deterministic_a"]["initial"], kernels["deterministic_b"]["initial"])
    assert identical(kernels["deterministic_a"]["final"], kernels["deterministic_b"]["final"])
    assert not identical(kernels["deterministic_a"]["initial"], kernels["deterministic_a"]["final"])


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_left_out(four_at_once):
    """TensorFlow's C++ start-up lines (absl's preamble, oneDNN, CUDA) are not printed, even
    with TF_CPP_MIN_LOG_LEVEL=0; kexp's own lines and real errors are."""
    from kexp.training import tf_startup

    _, _, output = four_at_once()[LOGGING_ON]
    assert not [line for line in output.splitlines()
                if tf_startup.STARTUP_LINE.match(line.encode())], output
    assert "kexp: finished" in output
    assert tf_startup.STARTUP_LINE.match(b"I0000 00:00:1796605981.829667   21822 port.cc:153] x")


def test_kernel_snapshots_leave_keras_batch_hooks_asynchronous(tmp_path):
    """A callback that overrides a batch hook makes Keras sync every step unless it is
    async-safe; per-epoch snapshots must not cost that."""
    from kexp.training.callbacks import KernelSnapshots

    assert KernelSnapshots(tmp_path).async_safe
    assert not KernelSnapshots(tmp_path, every_batches=5).async_safe
