"""One training of the study inside a Ray task, on whichever node Ray placed it.

The task runs the same child process as the local engine (`python -m
kexp.experiments.compare.child`), in a temporary folder of its node: no filesystem is shared with
the driver. While the child trains, each new epoch checkpoint is packed and handed to the
study's checkpoint keeper (an actor on the driver's machine); a retried task, after its first
worker or node was lost, gets that checkpoint back and continues the run from it. At the end the
task returns the whole run folder as bytes, with the log and how the training ended; the
temporary folder is removed. The child is told to die with this worker, so a lost worker leaves
no training behind.

Runs in a Ray worker, never imports TensorFlow (the child does) and imports Ray only inside
`train_on_worker`: the driver and the tests import this module where Ray may be missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kexp.experiments.compare import shipping, sweep
from kexp.storage import atomic, run_lock, runs
from kexp.training import tf_startup

POLL_SECONDS = 1.0  # how often the task looks for a new checkpoint to send
# A new checkpoint travels to the keeper at most this often (the first one at once): each is the
# run folder with the model's and the optimizer's state (about 8 MB for mnist_cnn), and a lost
# node then costs at most this much training.
SHIP_EVERY_SECONDS = 30.0
WORK_ROOT = "kexp-ray"  # <tmp>/kexp-ray/<worker pid>-<random>/: one folder per attempt


class TrainingProcessLost(RuntimeError):
    """The training's process was killed from outside (out of memory, a signal) before it
    could report: an infrastructure failure, which Ray retries like a lost worker."""


def train_on_worker(name: str, config: dict, threads: int, keeper) -> dict:
    """Train `config` (TrainConfig.to_dict()) with `threads` TensorFlow threads and return
    {"status", "reason", "archive" (the run folder as bytes, or None), "log" (bytes), "attempt",
    "resumed_after_epoch", "host", "node", "seconds" (the training's process), "task_seconds"
    (the whole task), "shipping_seconds" (sending checkpoints)}. `name` is the training's name
    in the study, under which `keeper` holds its latest checkpoint."""
    import ray  # a Ray worker always has it; here so that importing this module needs no Ray

    started = time.perf_counter()
    attempt, checkpoint = ray.get(keeper.begin.remote(name))
    work = work_folder()
    try:
        result = _train(work, name, config, threads, keeper, checkpoint, attempt)
        return {**result, "attempt": attempt, "host": socket.gethostname(),
                "node": ray.get_runtime_context().get_node_id(),
                "task_seconds": round(time.perf_counter() - started, 2)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def work_folder() -> Path:
    """A new folder for this attempt under <tmp>/kexp-ray/. Folders there whose worker is gone
    (killed with its node before it could clean up) are removed first."""
    root = Path(tempfile.gettempdir()) / WORK_ROOT
    root.mkdir(exist_ok=True)
    for folder in root.iterdir():
        owner = folder.name.split("-")[0]
        if owner.isdigit() and not run_lock.process_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))


def _continue_from(checkpoint: bytes, runs_dir: Path, attempt: int) -> tuple[Path, int]:
    """Unpack a shipped checkpoint and mark its run as stopped (its writer is gone), so that
    kexp.training.trainer.resume takes it; returns the run folder and the epoch it continues
    after."""
    run_dir = shipping.land_run(checkpoint, runs_dir)
    runs.write_status(run_dir, runs.STATUS_INTERRUPTED,
                      reason=f"its worker was lost; attempt {attempt} continues it")
    latest = shipping.latest_checkpoint(run_dir)
    return run_dir, runs.label_epoch(Path(latest).stem) if latest else 0


def _the_run(runs_dir: Path) -> Path | None:
    """The run folder the child created in `runs_dir`, once it exists."""
    found = runs.list_runs(runs_dir)
    return found[0] if found else None


def _ended(process: subprocess.Popen, seconds: float) -> bool:
    """Wait up to `seconds` for the process; True at once when it ends."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _ship_checkpoints(process: subprocess.Popen, run_dir: Path | None, runs_dir: Path,
                      name: str, keeper) -> tuple[Path | None, float]:
    """While the training runs, hand its newest checkpoint to the keeper (each one waited for,
    so none lands after the result); returns the run folder and the seconds spent sending."""
    import ray  # see train_on_worker

    shipped = shipping.latest_checkpoint(run_dir) if run_dir else None
    shipped_at, spent = -SHIP_EVERY_SECONDS, 0.0
    while not _ended(process, POLL_SECONDS):
        run_dir = run_dir or _the_run(runs_dir)
        newest = shipping.latest_checkpoint(run_dir) if run_dir else None
        now = time.perf_counter()
        if newest and newest != shipped and now - shipped_at >= SHIP_EVERY_SECONDS:
            ray.get(keeper.keep.remote(name, shipping.pack_run(run_dir)))
            shipped, shipped_at, spent = newest, now, spent + time.perf_counter() - now
    return run_dir, spent


def _train(work: Path, name: str, config: dict, threads: int, keeper, checkpoint,
           attempt: int) -> dict:
    runs_dir = work / "runs"
    runs_dir.mkdir()
    run_dir, resumed_after = (None, 0) if checkpoint is None else _continue_from(
        checkpoint, runs_dir, attempt)
    config_path = atomic.write_json_atomic(work / "config.json",
                                         {**config, "runs_dir": str(runs_dir)})
    result_path, log_path = work / "result.json", work / "training.log"
    environment = tf_startup.quiet_logs({**os.environ, "PYTHONUNBUFFERED": "1",
                                         sweep.PARENT_PID_VARIABLE: str(os.getpid())})
    command = [sys.executable, "-m", sweep.CHILD_MODULE, str(config_path), str(result_path),
               "--threads", str(threads)] + ([] if run_dir is None else ["--resume", str(run_dir)])
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        log.write(f"kexp compare: {name}, attempt {attempt} on {socket.gethostname()}, "
                  f"{threads} thread(s)"
                  f"{f', continuing after epoch {resumed_after}' if run_dir else ''}\n".encode())
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=environment)
        run_dir, shipping_seconds = _ship_checkpoints(process, run_dir, runs_dir, name, keeper)
    seconds = round(time.perf_counter() - started, 2)
    result = runs.read_json(result_path) if result_path.exists() else {}
    if not result and process.returncode < 0:
        raise TrainingProcessLost(f"{name}: its training process was killed by signal "
                                  f"{-process.returncode}")
    run_dir = _the_run(runs_dir) if run_dir is None else run_dir
    finished = process.returncode == 0 and result.get("status") == runs.STATUS_FINISHED
    status = runs.STATUS_FINISHED if finished else (
        runs.STATUS_INTERRUPTED if result.get("status") == runs.STATUS_INTERRUPTED
        else runs.STATUS_FAILED)
    reason = "" if finished else sweep.failure_reason(run_dir, log_path, result.get("reason", ""),
                                                      process.returncode)
    return {"status": status, "reason": reason, "resumed_after_epoch": resumed_after,
            "archive": None if run_dir is None else shipping.pack_run(run_dir),
            "log": log_path.read_bytes(), "seconds": seconds,
            "shipping_seconds": round(shipping_seconds, 2)}
