"""Run the study's trainings, each in its own process, `jobs` at a time.

A child gets its settings as a file and reports its run folder in another (see `child`), so a
training that fails or crashes becomes a row of the table without stopping the others. No
TensorFlow in this process: it only starts trainings and reads their folders.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kexp.experiments.compare import plan
from kexp.storage import atomic, runs
from kexp.training import stop_signals, tf_startup

CHILD_MODULE = f"{__package__}.child"
# Set for a child whose parent may vanish with its node (a Ray worker): child.die_with_parent.
PARENT_PID_VARIABLE = "KEXP_PARENT_PID"


def say(line: str) -> None:
    """Progress lines appear at once, also when stdout is a file or a pipe (CI, make)."""
    print(line, flush=True)


def _start(training: plan.Training, compare_dir: Path, threads: int | None) -> subprocess.Popen:
    """Start the child with its run folder in <compare>/runs and its output in <compare>/logs;
    a training that already has a run folder (a resumed study) continues it. The log is
    appended to, so a resumed training's log keeps what its first attempt printed."""
    config = dataclasses.replace(training.config, runs_dir=str(compare_dir / plan.RUNS_SUBDIR))
    config_path = atomic.write_json_atomic(training.file(compare_dir, plan.CONFIG_SUFFIX),
                                         config.to_dict())
    training.log_path = training.file(compare_dir, plan.LOG_SUFFIX)
    training.file(compare_dir, plan.RESULT_SUFFIX).unlink(missing_ok=True)  # a resumed one's
    environment = tf_startup.quiet_logs({**os.environ, "PYTHONUNBUFFERED": "1"})
    options = ([] if threads is None else ["--threads", str(threads)]) + (
        [] if training.run_dir is None else ["--resume", str(training.run_dir)])
    with open(training.log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, str(config_path),
             str(training.file(compare_dir, plan.RESULT_SUFFIX)), *options],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment)


def failure_reason(run_dir: Path | None, log_path: Path, reported: str, returncode: int) -> str:
    """Why a training failed: its run's status.json if it got that far, else what its process
    reported, else its last error line, else the exit code or signal."""
    if run_dir is not None and (run_dir / runs.STATUS_FILE).exists():
        reason = runs.read_status(run_dir).get("reason")
        if reason:
            return reason
    if reported:
        return reported
    text = log_path.read_text(encoding="utf-8", errors="replace")
    for line in reversed(text.splitlines()):
        if re.search(r"error|exception|killed", line, re.IGNORECASE):
            return line.strip()[:300]
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def finished_line(training: plan.Training, done: int, total: int) -> str:
    """The progress line of a training that ended, with the running count (every engine)."""
    outcome = (f"test accuracy {runs.read_status(training.run_dir)['test_accuracy']:.4f}"
               if training.status == runs.STATUS_FINISHED
               else f"{training.status.upper()}: {training.reason}")
    return (f"kexp compare: finished {training.label} ({done}/{total}) in "
            f"{training.wall_seconds:.0f} s: {outcome}")


def _finish(training: plan.Training, compare_dir: Path, process: subprocess.Popen) -> None:
    """Read what the child reported; a child that died before it could say is found by its
    process id in status.json."""
    result_path = training.file(compare_dir, plan.RESULT_SUFFIX)
    result = runs.read_json(result_path) if result_path.exists() else {}
    if result.get("run_dir"):
        training.run_dir = Path(result["run_dir"])
    elif not result:
        training.run_dir = runs.run_of_process(compare_dir / plan.RUNS_SUBDIR, process.pid)
    status = runs.read_status(training.run_dir)["status"] if training.run_dir else None
    if process.returncode == 0 and status == runs.STATUS_FINISHED:
        training.status = runs.STATUS_FINISHED
        figures_error = runs.read_status(training.run_dir).get("figures_error")
        if figures_error:  # a complete run whose figures failed: say so on its row
            training.reason = f"figures not drawn: {figures_error}"
    else:
        training.status = status if status == runs.STATUS_INTERRUPTED else runs.STATUS_FAILED
        training.reason = failure_reason(training.run_dir, training.log_path,
                                         result.get("reason", ""), process.returncode)


def _stop(process: subprocess.Popen, signal_number: int, grace_seconds: float = 30) -> None:
    """Let an interrupted training save its kernels and status: pass the sweep's stop signal on
    (a terminal's Ctrl-C may have reached it already; a second one is ignored while it saves),
    and kill it only if it is still running after a grace period."""
    for ask in (signal_number, signal.SIGKILL):
        if process.poll() is None:
            process.send_signal(ask)
        try:
            process.wait(timeout=grace_seconds)
            return
        except subprocess.TimeoutExpired:
            continue


def run_trainings(trainings: list[plan.Training], compare_dir: Path, jobs: int, say=say,
                  threads: int | None = None) -> list[plan.Training]:
    """Run every training as its own process, `jobs` at a time, each with `threads` TensorFlow
    threads (None: TensorFlow's default, all cores); print a line as each starts and ends. A
    failure is recorded on its Training; the others go on. Ctrl-C, SIGTERM or SIGHUP interrupts
    the running ones (they save their kernels) and the sweep starts no new ones."""
    waiting = list(trainings)
    running: dict[subprocess.Popen, tuple[plan.Training, float]] = {}
    try:
        with stop_signals.stop_on_signals():
            _sweep(waiting, running, compare_dir, jobs, say, threads)
    except KeyboardInterrupt as interruption:
        for process, (training, started) in running.items():
            _stop(process, stop_signals.signal_of(interruption))
            _finish(training, compare_dir, process)
            if training.run_dir is None:  # stopped while Python and TensorFlow were starting
                training.status = "skipped"
                training.reason = "the sweep was interrupted while this training was starting"
        for training in waiting:
            training.status, training.reason = "skipped", "the sweep was interrupted"
        raise
    return trainings


def _sweep(waiting: list[plan.Training], running: dict, compare_dir: Path, jobs: int,
           say, threads: int | None) -> None:
    """Start trainings while fewer than `jobs` run; record each that ends."""
    total, done = len(waiting), 0
    while waiting or running:
        while waiting and len(running) < jobs:
            training = waiting.pop(0)
            training.status = runs.STATUS_RUNNING
            running[_start(training, compare_dir, threads)] = (training, time.perf_counter())
            say(f"kexp compare: started  {training.label} "
                f"({total - len(waiting)}/{total} started, {len(running)} running)")
        time.sleep(0.2)
        for process in [p for p in running if p.poll() is not None]:
            training, started = running.pop(process)
            training.wall_seconds = round(time.perf_counter() - started, 1)
            _finish(training, compare_dir, process)
            done += 1
            say(finished_line(training, done, total))
