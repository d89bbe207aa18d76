"""`kexp compare` checks the whole study before its folder exists: two specs that are the same
initializer, data that does not load (the study's or image_patches' own) and every training
setting are refused with nothing created; distinct specs never share a log file."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kexp import cli
from kexp.digits import data
from kexp.experiments.compare import command, plan

from helpers import TINY_STUDY


@pytest.mark.parametrize("specs, same", [
    (["zeros:", "zeros:,"], "'zeros:' and 'zeros:,' are the same initializer (zeros)"),
    (["he_normal", "glorot_uniform", "he_normal:"], "'he_normal' and 'he_normal:'"),
    (["random_normal", "random_normal:stddev=0.05"], "(random_normal:mean=0.0,stddev=0.05)"),
    (["random_normal:stddev=0.5,mean=0", "random_normal:mean=0.0,stddev=5e-1"],
     "are the same initializer"),
    (["variance_scaling:mode=fan_in", "variance_scaling:distribution=truncated_normal"],
     "are the same initializer"),
])
def test_equivalent_initializer_specs_are_refused_before_anything_starts(tmp_path, capsys,
                                                                         specs, same):
    arguments = ["compare", "--inits", *specs, "--seeds", "0", "--runs-dir", str(tmp_path)]
    assert cli.main(arguments) == 2
    err = capsys.readouterr().err
    assert "Invalid value for `initializers`" in err and same in err, err
    assert list(tmp_path.iterdir()) == []


def _not_mnist(path):
    np.savez(path, x_train=np.zeros((3, 5)))
    return path


@pytest.mark.parametrize("changes, message", [
    (lambda tmp: dict(data=str(tmp / "missing.npz")), r"Invalid value for `data`: '.*missing"),
    (lambda tmp: dict(data=str(_not_mnist(tmp / "other.npz"))), r"other.npz: missing arrays"),
    (lambda tmp: dict(data=str(tmp)), r"missing train-images-idx3-ubyte"),
    (lambda tmp: dict(initializers=["image_patches:data=mnist"]),
     r"`image_patches:data`: 'mnist'.*no network\)\. .*--init image_patches:data=mnist-5k"),
    (lambda tmp: dict(initializers=["random_normal:stddev=1,stddev=2"]), r"given twice"),
    (lambda tmp: dict(initializers=["random_normal:stddev=1e40"]), r"at most 3.403e\+38"),
    (lambda tmp: dict(train_samples=0), r"Invalid value for `train_samples`: 0"),
    (lambda tmp: dict(snapshot_every_batches=-1), r"`snapshot_every_batches`: -1"),
])
def test_data_specs_and_settings_are_checked_before_the_study_folder_exists(
        tmp_path, monkeypatch, changes, message):
    def offline():
        raise data.DataError("keras.datasets.mnist.load_data() failed: no network")

    monkeypatch.setattr(data, "load_keras_mnist", offline)
    runs_dir = tmp_path / "runs"
    study = plan.Study(runs_dir=str(runs_dir), **{**TINY_STUDY, "initializers": ["zeros"],
                                                  **changes(tmp_path)})
    with pytest.raises(ValueError, match=message):
        command.run_study(study, say=lambda line: None)
    assert not runs_dir.exists()


@pytest.mark.parametrize("first, second", [
    ("random_normal:mean= 2", "random_normal:mean=-2"),
    ("random_normal:stddev=1e+3", "random_normal:stddev=1e-3"),
    ("zeros", "zeros:"),
])
def test_distinct_specs_never_share_a_log_file(tmp_path, first, second):
    files = {plan.Training(spec, 0, None).file(tmp_path, plan.LOG_SUFFIX)
             for spec in (first, second)}
    assert len(files) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9_.=-]+-seed0\.log", path.name) for path in files)
    assert plan.Training("he_normal", 1, None).file(tmp_path, ".log").name == \
        "he_normal-seed1.log"
