"""Shared fixtures: one tiny real training run (real MNIST digits from the offline subset, a few
hundred samples, two epochs) that several test files inspect, the default recipe's run and the
demos' trainings that the claims' files read, and the repo root for CLI calls.

A session fixture that trains is computed once per test session, even when `make test` runs the
files on several pytest-xdist workers: `computed_once` lets the first worker that asks compute it
while the others wait on a file lock, then hands every worker the same result."""

import fcntl
import os
import pickle
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def computed_once(tmp_path_factory, name: str, compute):
    """`compute(folder)`'s result, computed once per test session into a folder of its own and
    shared by every worker: the first to ask holds an exclusive lock on `<name>.lock` while it
    computes and records the result; the others block on that lock (a handshake, not a guessed
    delay) and read the result it recorded. A compute that fails records nothing, so the next
    worker to ask tries again (and reports its own error)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, above each worker's own
    folder, recorded = base / f"shared-{name}", base / f"shared-{name}.pickle"
    with open(base / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, however this ends
        if recorded.exists():
            return pickle.loads(recorded.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # what a failed compute left
        folder.mkdir()
        result = compute(folder)
        partial = recorded.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        partial.replace(recorded)
        return result


@pytest.fixture(scope="session")
def tiny_config_values() -> dict:
    return dict(data="mnist-5k", train_samples=256, test_samples=128, epochs=2, batch_size=64,
                seed=3)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_config_values) -> Path:
    """A finished run folder from kexp.training.trainer.train on real digits."""
    from kexp.config import TrainConfig
    from kexp.training.trainer import train

    runs_dir = tmp_path_factory.mktemp("runs")
    return train(TrainConfig(runs_dir=str(runs_dir), **tiny_config_values), verbose=0)


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A finished run folder of the default recipe (`make train`: TrainConfig's defaults, 60
    epochs) on the offline digits the README's accuracy is stated for. About 2 minutes."""
    from kexp.config import TrainConfig
    from kexp.training.trainer import train

    return computed_once(tmp_path_factory, "default-run", lambda folder: train(
        TrainConfig(data="mnist-5k", runs_dir=str(folder)), verbose=0))


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demos' context (kexp.experiments.demos.common.DemoContext): `demo.run(init, freeze,
    learning_rate)` trains at docs/claims.md's settings once per session, shared by the claims'
    files whichever worker runs them, and every later call reuses the run."""
    return shared_demos()(tmp_path_factory.mktemp("demos"), tmp_path_factory=tmp_path_factory)


@pytest.fixture(scope="session")
def converged(demo, default_run):
    """The demos' context with the default run as the finished run that demos 2, 10 and 15
    judge (so the suite trains the 60-epoch run once); its 3-epoch runs are `demo`'s."""
    return type(demo)(demo.out_dir, converged_dir=default_run, runs=demo.runs,
                      tmp_path_factory=demo.tmp_path_factory)


def shared_demos():
    """DemoContext whose 3-epoch trainings are computed_once: each is the product's own
    DemoContext.run in a folder of its own, read back with common.read_run."""
    from dataclasses import dataclass

    from kexp.experiments.demos import common

    @dataclass
    class SharedDemos(common.DemoContext):
        tmp_path_factory: object = None

        def run(self, init: str, freeze: tuple[str, ...] = (),
                learning_rate: float = common.LEARNING_RATE) -> dict:
            key = (init, tuple(freeze), learning_rate)
            if key not in self.runs:
                name = f"demo-{init}-{'-'.join(freeze) or 'trainable'}-{learning_rate:g}"
                run_dir = computed_once(self.tmp_path_factory, name, lambda folder: common.
                                        DemoContext(folder).run(init, freeze, learning_rate)[
                                            "run_dir"])
                self.runs[key] = common.read_run(run_dir)
            return self.runs[key]

    return SharedDemos


class TinyStudy(NamedTuple):
    compare_dir: Path
    rows: dict  # summary rows by initializer
    said: list  # the progress lines the study printed
    study: object  # its kexp.experiments.compare.plan.Study


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> TinyStudy:
    """One tiny initializer study that the study's tests and the browser's share: glorot_uniform,
    zeros and ones (one epoch on 300 digits, two at a time with one TensorFlow thread each, a
    snapshot per batch, TensorBoard logs), plus a he_normal training whose data file does not
    exist: it passes the study's own checks and fails inside its training process. One thread
    per training, as on Ray: test_compare_ray.py checks that Ray gives the same rows."""
    import dataclasses
    import json

    from kexp.experiments.compare import command, engines, plan

    def run(root: Path) -> tuple:
        study = plan.Study(initializers=["glorot_uniform", "zeros", "ones"], seeds=[0], epochs=1,
                           train_samples=300, snapshot_every_batches=1, tensorboard=True, jobs=2,
                           runs_dir=str(root / "runs"))
        failing = dataclasses.replace(study, initializers=["he_normal"],
                                      data=str(root / "missing" / "mnist.npz"))
        said: list[str] = []
        compare_dir = command.run_study(study, say=said.append,
                                        trainings=plan.trainings(study) + plan.trainings(failing),
                                        engine=engines.LocalEngine(jobs=2, cpus_per_training=1))
        return compare_dir, said, study

    compare_dir, said, study = computed_once(tmp_path_factory, "tiny-study", run)
    rows = json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]
    return TinyStudy(compare_dir, {row["initializer"]: row for row in rows}, said, study)


@pytest.fixture
def file_events(monkeypatch) -> list[str]:
    """Records "fsync" and "replace" in the order kexp calls os.fsync and os.replace."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        events.append("fsync")
        return fsync(fd)

    def recording_replace(source, target):
        events.append("replace")
        return replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return events


@pytest.fixture(scope="session")
def interrupted_run(tmp_path_factory, tiny_config_values) -> Path:
    """A real run stopped by Ctrl-C after the first of its two epochs: status `interrupted`, a
    checkpoint, kernels initial / epoch_001 / interrupted. Its runs folder's name has a space, a
    quote and a dollar sign, as a hostile user's would. Tests copy it before changing it."""
    import keras

    from kexp.config import TrainConfig
    from kexp.training.trainer import TrainingInterrupted, train

    class CtrlCAfterTheFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    def run(folder: Path) -> Path:
        with pytest.raises(TrainingInterrupted) as stopped:
            train(TrainConfig(runs_dir=str(folder / "runs dir's $HOME"), **tiny_config_values),
                  extra_callbacks=[CtrlCAfterTheFirstEpoch()], verbose=0)
        return stopped.value.run_dir

    return computed_once(tmp_path_factory, "interrupted-run", run)


# Session or module fixtures that train a model or run a study: every test that uses one, even
# through another fixture, is in the slow lane. `make test-fast` runs the others
# (pytest -m "not slow"), for the edit-test loop.
TRAINING_FIXTURES = {"trained_run", "interrupted_run", "default_run", "tiny_study", "two_engines",
                     "resumed_variants", "demo", "converged"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# `make test` hands whole files to its two workers (--dist loadfile), the next file to the first
# worker that is almost free. These files take longest, so they go first, longest first: a long
# file handed out last would run alone at the end while the other worker idles. Measured on 2
# cores (seconds of one worker): 150 each for the first three, 130, then 80 down to 25. Every
# other file follows in pytest-xdist's own order.
LONGEST_FILES = ("test_claims_trained_filters.py", "test_reliability.py", "test_compare_ray.py",
                 "test_compare.py", "test_claims_designed_filters.py", "test_damaged_files.py",
                 "test_recipe.py", "test_hostile_processes.py", "test_training_run.py",
                 "test_disk_full.py", "test_compare_ray_cluster.py", "test_pasted_commands.py",
                 "test_hostile_inputs.py", "test_hostile_numbers.py", "test_resume_hazards.py")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, when it is installed
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFilesFirst(LoadFileScheduling):
        def _assign_work_unit(self, node):
            rank = {name: place for place, name in enumerate(LONGEST_FILES)}
            for scope in sorted(self.workqueue, key=lambda scope: rank.get(
                    Path(scope).name, len(rank))):
                self.workqueue.move_to_end(scope)
            super()._assign_work_unit(node)

    return LongestFilesFirst(config, log)


# What Ray and Jupyter would leave in the user's home directory (a token, a profile): the tests
# keep those in their own temporary folders, and the run fails if any of them appears.
HOME_LEFTOVERS = (".ray", ".ipython", ".jupyter", ".local/share/jupyter")


def _leftovers_present() -> set[str]:
    home = Path.home()
    return {name for name in HOME_LEFTOVERS if (home / name).exists()}


def pytest_sessionstart(session):
    session.config.stash[_HOME_BEFORE] = _leftovers_present()


def pytest_sessionfinish(session, exitstatus):
    new = sorted(_leftovers_present() - session.config.stash.get(_HOME_BEFORE, set()))
    if new:
        print(f"\nThe tests left {', '.join(f'~/{name}' for name in new)} in the home "
              "directory: a test must keep such files in its own temporary folder.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_HOME_BEFORE = pytest.StashKey[set]()
