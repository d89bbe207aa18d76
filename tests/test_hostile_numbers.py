"""Numbers that training cannot survive are refused up front, and a run whose loss or weights stop
being finite ends `failed` with the reason, never `finished`."""

from __future__ import annotations

import re

import pytest

from kexp.config import ConfigError, TrainConfig
from kexp.storage import runs

from helpers import TINY_TRAIN_ARGS, kexp_in_process


@pytest.mark.parametrize("changes, message", [
    ({"seed": 2**70}, r"`seed`: 1180591620717411303424\. Expected a whole number >= 0 "
                      r"\(at most 4294967295\)"),
    ({"seed": 2**32}, r"`seed`: 4294967296\."),
    ({"batch_size": 2**64}, r"`batch_size`: 18446744073709551616\. Expected a whole number >= 1"),
    ({"epochs": 2**40}, r"`epochs`: 1099511627776\."),
    ({"train_samples": 2**63}, r"`train_samples`: 9223372036854775808\."),
    ({"snapshot_every_batches": 2**33}, r"`snapshot_every_batches`: 8589934592\."),
    ({"learning_rate": 1e300}, r"`learning_rate`: 1e\+300\. Expected a number from 0"),
    ({"learning_rate": float("inf")}, r"`learning_rate`: inf\."),
    ({"learning_rate": float("nan")}, r"`learning_rate`: nan\."),
    ({"runs_dir": ""}, r"`runs_dir`: ''\. Expected a folder path"),
    ({"runs_dir": "   "}, r"`runs_dir`: '   '\."),
])
def test_numbers_training_cannot_take_are_refused_before_anything_exists(tmp_path, monkeypatch,
                                                                       changes, message):
    from kexp.training.trainer import train

    monkeypatch.chdir(tmp_path)  # an empty --runs-dir must not write into the current folder either
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(**{"runs_dir": str(tmp_path / "runs"), "data": "mnist-5k", **changes}))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["--init", "random_normal:stddev=1e30"],  # finite in float32, overflows in the first steps
    ["--learning-rate", "1e30"],
    ["--learning-rate", "1e15", "--schedule", "constant", "--no-augment"],
])
def test_a_run_that_diverges_fails_with_its_reason(tmp_path, capsys, args):
    """`kexp train` in this process (cli.main: what `python -m kexp` exits with), so that each
    case pays for its training, not for a TensorFlow start-up."""
    reason = re.compile(r"(loss became nan|are not finite after) (in )?epoch 1\. Expected finite")
    result = kexp_in_process(capsys, "train", *TINY_TRAIN_ARGS, "--epochs", "2", "--runs-dir",
                             tmp_path / "runs", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert reason.search(result.stderr) and "Traceback" not in result.stderr, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FAILED and reason.search(status["reason"])
    assert not (run_dir / runs.MODEL_FILE).exists()
