"""Shared fixtures: one tiny real training run (real MNIST digits from the offline subset, a few
hundred samples, two epochs) that several test files inspect, and the repo root for CLI calls."""

import os
from pathlib import Path
from typing import NamedTuple

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


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

    runs_dir = tmp_path_factory.mktemp("default_run")
    return train(TrainConfig(data="mnist-5k", runs_dir=str(runs_dir)), verbose=0)


class TinyStudy(NamedTuple):
    compare_dir: Path
    rows: dict  # summary rows by initializer
    said: list  # the progress lines the study printed
    study: object  # its kexp.experiments.compare.plan.Study


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> TinyStudy:
    """One tiny initializer study that the study's tests and the browser's share: glorot_uniform,
    zeros and ones (one epoch on 300 digits, two at a time, a snapshot per batch, TensorBoard
    logs), plus a he_normal training whose data file does not exist: it passes the study's own
    checks and fails inside its training process."""
    import dataclasses
    import json

    from kexp.experiments.compare import command, plan

    root = tmp_path_factory.mktemp("study")
    study = plan.Study(initializers=["glorot_uniform", "zeros", "ones"], seeds=[0], epochs=1,
                       train_samples=300, snapshot_every_batches=1, tensorboard=True, jobs=2,
                       runs_dir=str(root / "runs"))
    failing = dataclasses.replace(study, initializers=["he_normal"],
                                  data=str(root / "missing" / "mnist.npz"))
    said: list[str] = []
    compare_dir = command.run_study(study, say=said.append,
                                    trainings=plan.trainings(study) + plan.trainings(failing))
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

    runs_dir = tmp_path_factory.mktemp("interrupted") / "runs dir's $HOME"
    with pytest.raises(TrainingInterrupted) as stopped:
        train(TrainConfig(runs_dir=str(runs_dir), **tiny_config_values),
              extra_callbacks=[CtrlCAfterTheFirstEpoch()], verbose=0)
    return stopped.value.run_dir


# Session or module fixtures that train a model or run a study: every test that uses one, even
# through another fixture, is in the slow lane. `make test-fast` runs the others
# (pytest -m "not slow"), for the edit-test loop.
TRAINING_FIXTURES = {"trained_run", "interrupted_run", "default_run", "tiny_study", "two_engines",
                     "resumed_variants", "stop_signal_reference", "demo"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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
