"""The study's trainings as Ray tasks, on a local Ray that kexp starts and stops or on an
existing cluster (`--address`): for studies that outgrow one machine, on the engine that users
with a cluster already run.

Each training is one Ray Core task that needs `cpus_per_training` CPUs (and uses as many
TensorFlow threads); Ray places it on any node with CPUs free. No shared filesystem is assumed:
the task (kexp.experiments.compare.ray_worker) trains in a temporary folder on its node and
returns the run folder as bytes, which the driver lands atomically in <compare>/runs. While it
trains it hands each new epoch checkpoint to a keeper actor on the driver's machine, which keeps
it as logs/<init>-seed<S>.checkpoint.tar. A task whose worker process or node dies is retried
by Ray (`max_retries`; `retry_exceptions` only for a killed training process or an OSError on
the worker, never for a training that failed on its own) and continues from that checkpoint; a
training that still fails becomes a `failed` row and the others go on.

Ray is imported inside the functions that use it, never at the top: the local engine and
`kexp --help` import this module and must work where Ray is not installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path

from kexp.errors import KexpError
from kexp.experiments.compare import plan, ray_token, ray_worker, shipping, sweep
from kexp.storage import atomic, runs
from kexp.training import stop_signals, tf_startup

RAY_INSTALL = ("pip install 'kexp[ray]' (in a clone of kexp: pip install -r "
               "requirements-ray.txt, or make compare ENGINE=ray)")
MAX_RETRIES = 3  # attempts after the first, when a worker or node is lost
RETRY_EXCEPTIONS = [ray_worker.TrainingProcessLost, OSError]  # infrastructure, not the training
# Every task's environment: TensorFlow's start-up lines stay out of the logs.
RUNTIME_ENV = {"env_vars": tf_startup.quiet_logs({})}
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # read by Ray when imported


class RayEngineError(KexpError):
    """Ray is not installed, or the cluster at --address cannot be reached."""


def require_ray(local: bool = False):
    """The ray module, or an error that says how to install it. A local Ray (one that kexp
    starts) listens on 127.0.0.1 only: nothing outside this machine needs to reach it."""
    if local:
        for name, value in LOOPBACK_ONLY.items():
            os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError as error:
        raise RayEngineError(f"--engine ray needs Ray, which cannot be imported ({error}). "
                             f"Install it with: {RAY_INSTALL}") from None
    return ray


class CheckpointKeeper:
    """A Ray actor on the driver's machine: keeps each training's latest checkpoint (its run
    folder as bytes) in the study folder, and counts each training's attempts."""

    def __init__(self, compare_dir: str):
        self.logs = Path(compare_dir) / plan.LOGS_SUBDIR
        self.attempts: dict[str, int] = {}

    def begin(self, name: str) -> tuple[int, bytes | None]:
        """An attempt starts: its number, and the checkpoint to continue from (None: none)."""
        self.attempts[name] = self.attempts.get(name, 0) + 1
        path = self.logs / f"{name}{plan.CHECKPOINT_SUFFIX}"
        return self.attempts[name], path.read_bytes() if path.exists() else None

    def keep(self, name: str, archive: bytes) -> None:
        atomic.write_bytes_atomic(self.logs / f"{name}{plan.CHECKPOINT_SUFFIX}", archive)

    def started(self) -> list[str]:
        return sorted(self.attempts)


def training_name(training: plan.Training) -> str:
    """The training's name in the study: its log's name without the suffix."""
    return training.file(Path(), "").name


@dataclasses.dataclass
class RayEngine:
    """Ray tasks of `cpus_per_training` CPUs each, on the cluster at `address` (None: a local
    Ray, with an object store of `object_store_mb` MB, None: Ray's default)."""

    address: str | None = None
    cpus_per_training: int = 1
    max_retries: int = MAX_RETRIES
    object_store_mb: int | None = None

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
        return (f"Ray tasks on {where}, {self.cpus_per_training} CPU(s) and TensorFlow "
                "thread(s) each")

    @contextlib.contextmanager
    def connected(self):
        """Connect to the cluster, in its authentication mode (ray_token), or start a local Ray
        for the block; leave a Ray that this process had already started (a notebook's, a
        test's) running. A cluster without a node that has `cpus_per_training` CPUs is refused
        here, before the study folder exists."""
        ray = require_ray(local=not self.address)
        if ray.is_initialized():
            self._check_cpus(ray)
            yield self
            return
        try:
            if self.address:  # a cluster with token authentication gets this machine's token
                ray_token.authenticate(self.address)
            ray.init(**self._init_options())
        except ray_token.ClusterTokenError:
            raise
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            raise RayEngineError(f"Invalid value for `address`: {self.address!r}. Expected a "
                                 f"running Ray cluster ({error}).") from None
        try:
            self._check_cpus(ray)
            yield self
        finally:
            ray.shutdown()

    def _init_options(self) -> dict:
        # "local": a Ray of kexp's own, never one that `ray start` left running on this machine
        # (it could be stopped under the study, and kexp would stop it at the end).
        options = dict(address=self.address or "local", log_to_driver=False,
                       runtime_env=RUNTIME_ENV, logging_level=logging.WARNING)
        if not self.address:  # a local Ray's workers import the driver's own kexp
            here = str(Path(__file__).resolve().parents[3])
            path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
            options.update(include_dashboard=False, runtime_env={"env_vars": {
                **RUNTIME_ENV["env_vars"], "PYTHONPATH": path}}, object_store_memory=None if
                self.object_store_mb is None else self.object_store_mb * 2**20)
        return options

    def _check_cpus(self, ray) -> None:
        largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes()
                       if node["Alive"]), default=0)
        if self.cpus_per_training > largest:
            raise RayEngineError(f"Invalid value for `cpus_per_training`: "
                                 f"{self.cpus_per_training}. Expected at most the CPUs of the "
                                 f"cluster's largest node ({largest:.0f}).")

    def run(self, trainings: list[plan.Training], compare_dir: Path, say=sweep.say
            ) -> list[plan.Training]:
        """Submit every training, then land each as it arrives, with a progress line. Ctrl-C,
        SIGTERM or SIGHUP cancels the rest: the started ones are `interrupted` (their last
        checkpoint stays for --resume), the others `skipped`."""
        import ray  # see the module docstring

        keeper = _start_keeper(ray, compare_dir)
        pending = {self._submit(ray, training, compare_dir, keeper):
                   (training, time.perf_counter()) for training in trainings}
        alive = [node for node in ray.nodes() if node["Alive"]]
        say(f"kexp compare: {len(pending)} trainings sent to Ray "
            f"({sum(node['Resources'].get('CPU', 0) for node in alive):.0f} CPUs on "
            f"{len(alive)} node(s))")
        try:
            with stop_signals.stop_on_signals():
                self._collect(ray, pending, compare_dir, len(trainings), say)
        except KeyboardInterrupt:
            started = _started(ray, keeper)
            for ref, (training, _) in pending.items():
                ray.cancel(ref, force=True)
                training.status, training.reason = (
                    (runs.STATUS_INTERRUPTED, "the sweep was interrupted; --resume continues "
                     "it from its last checkpoint") if training_name(training) in started
                    else ("skipped", "the sweep was interrupted"))
            raise
        return trainings

    def _submit(self, ray, training: plan.Training, compare_dir: Path, keeper):
        """Record the training's settings and start its task; a run folder it already has
        (a resumed study) becomes the checkpoint it continues from, unless one is kept."""
        config = dataclasses.replace(training.config,
                                     runs_dir=str(compare_dir / plan.RUNS_SUBDIR))
        atomic.write_json_atomic(training.file(compare_dir, plan.CONFIG_SUFFIX), config.to_dict())
        checkpoint = training.file(compare_dir, plan.CHECKPOINT_SUFFIX)
        if training.run_dir is not None and not checkpoint.exists():
            atomic.write_bytes_atomic(checkpoint, shipping.pack_run(training.run_dir))
        training.status = runs.STATUS_RUNNING
        task = ray.remote(ray_worker.train_on_worker).options(
            num_cpus=self.cpus_per_training, max_retries=self.max_retries,
            retry_exceptions=RETRY_EXCEPTIONS)
        return task.remote(training_name(training), config.to_dict(), self.cpus_per_training,
                           keeper)

    def _collect(self, ray, pending: dict, compare_dir: Path, total: int, say) -> None:
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                training, submitted = pending.pop(ref)
                training.wall_seconds = round(time.perf_counter() - submitted, 1)
                self._land(ray, ref, training, compare_dir)
                done += 1
                say(sweep.finished_line(training, done, total))

    def _land(self, ray, ref, training: plan.Training, compare_dir: Path) -> None:
        """Put what the task returned where the local engine would have: the run folder in
        runs/, the log and the result in logs/. A task that Ray gave up on is a failed row."""
        training.log_path = training.file(compare_dir, plan.LOG_SUFFIX)
        arriving = time.perf_counter()
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as error:
            training.status = runs.STATUS_FAILED
            training.reason = (f"Ray gave up on it ({1 + self.max_retries} attempts at most): "
                               f"{type(error).__name__}: "
                               f"{str(error).strip().splitlines()[-1][:300]}")
            result = {"log": f"kexp compare: {training.reason}\n".encode()}
        else:
            if result["archive"] is not None:
                training.run_dir = shipping.land_run(result["archive"],
                                                     compare_dir / plan.RUNS_SUBDIR)
            training.status, training.reason = result["status"], result["reason"]
            result["arrival_seconds"] = round(time.perf_counter() - arriving, 2)  # fetch + land
        with open(training.log_path, "ab") as log:  # a resumed study keeps earlier attempts'
            log.write(result.pop("log"))
        result.pop("archive", None)
        atomic.write_json_atomic(training.file(compare_dir, plan.RESULT_SUFFIX), {
            **result, "run_dir": None if training.run_dir is None else str(training.run_dir),
            "status": training.status, "reason": training.reason})
        if training.status == runs.STATUS_FINISHED:
            training.file(compare_dir, plan.CHECKPOINT_SUFFIX).unlink(missing_ok=True)


def _start_keeper(ray, compare_dir: Path):
    """The checkpoint keeper, pinned to this process's node: it writes into the study folder,
    which lives on this machine."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(num_cpus=0)(CheckpointKeeper).options(scheduling_strategy=here).remote(
        str(compare_dir.resolve()))


def _started(ray, keeper) -> set[str]:
    """The trainings that began an attempt (none known, if the keeper does not answer)."""
    try:
        return set(ray.get(keeper.started.remote(), timeout=10))
    except ray.exceptions.RayError:
        return set()
