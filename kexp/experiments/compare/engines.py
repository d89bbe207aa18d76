"""Where the study's trainings run: `local`, kexp's own pool of child processes on this machine,
or `ray`, Ray tasks on a local Ray or an existing cluster (kexp.experiments.compare.ray_engine).

`run_study` takes one engine object. Both engines fill in the same Training records and leave
the same study folder; they differ only in where a training's process runs and how its run
folder reaches the study. Each training gets a share of the CPUs and as many TensorFlow threads:
left to itself, TensorFlow sizes its pools to the whole machine, and trainings side by side then
fight for the cores.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from kexp.errors import KexpError
from kexp.experiments.compare import plan, ray_engine, sweep
from kexp.validation import check_whole

ENGINES = ("local", "ray")


class EngineError(KexpError):
    """An engine name or engine setting that kexp does not accept."""


def machine_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's limit, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class LocalEngine:
    """kexp's own pool: `jobs` child processes at a time on this machine, each with
    `cpus_per_training` TensorFlow threads (None: this machine's CPUs shared out among them)."""

    jobs: int = plan.STUDY_JOBS
    cpus_per_training: int | None = None

    @property
    def threads(self) -> int:
        return self.cpus_per_training or max(1, machine_cpus() // self.jobs)

    def describe(self) -> str:
        return (f"{self.jobs} at a time on this machine, {self.threads} TensorFlow thread(s) "
                "each")

    @contextlib.contextmanager
    def connected(self):
        """Nothing to start: the pool is this process."""
        yield self

    def run(self, trainings: list[plan.Training], compare_dir: Path, say=sweep.say
            ) -> list[plan.Training]:
        return sweep.run_trainings(trainings, compare_dir, self.jobs, say, self.threads)


def make_engine(name: str, jobs: int = plan.STUDY_JOBS, address: str | None = None,
                cpus_per_training: int | None = None):
    """The engine the command line asked for, checked before anything is created: a bad name
    or setting, or `ray` where Ray is not installed, fails here with what to do instead."""
    if name not in ENGINES:
        raise EngineError(f"Invalid value for `engine`: {name!r}. "
                          f"Expected one of: {', '.join(ENGINES)}.")
    if cpus_per_training is not None:  # None: the engine's own share
        check_whole("cpus_per_training", cpus_per_training, 1, error=EngineError)
    if name == "local":
        if address:
            raise EngineError(f"Invalid value for `address`: {address!r}. Expected none with "
                              "--engine local (an address names a Ray cluster: --engine ray).")
        return LocalEngine(jobs, cpus_per_training)
    ray_engine.require_ray(local=not address)
    return ray_engine.RayEngine(address=address or None, cpus_per_training=cpus_per_training or 1)
