"""Model files that would run code when loaded (a Keras `Lambda` layer) are refused, by the
loader and by `kexp train --resume`, and kexp never turns Keras' safe mode off."""

from __future__ import annotations

from pathlib import Path

import pytest

from kexp.storage import atomic, runs

from helpers import REPO_ROOT, TINY_TRAINING, kexp_in_process


def _lambda_model_file(path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.Lambda(lambda images: images * 2.0, name="double"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(path)
    return path


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    from kexp.network.saving import ModelLoadError, load_model

    path = _lambda_model_file(tmp_path / "lambda.keras")
    with pytest.raises(ModelLoadError, match=r"Refused to load .*lambda\.keras.*`Lambda` layer"):
        load_model(path)
    with pytest.raises(ModelLoadError, match=r"Invalid value for `model`: .*Expected an existing"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"junk" * 100)
    with pytest.raises(ModelLoadError, match=r"not a \.keras zip archive"):
        load_model(tmp_path / "junk.keras")


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_with_a_lambda_layer(tmp_path, capsys):
    """The user-facing loading path: `kexp train --resume` (cli.main, in this process) on a run
    whose checkpoint was replaced by a model that would run Python code when loaded."""
    from kexp.config import TrainConfig
    from kexp.digits.inputs import prepare_data

    runs_dir = tmp_path / "runs"
    config = TrainConfig(**TINY_TRAINING, epochs=2, runs_dir=str(runs_dir))
    _, data_summary = prepare_data(config)
    run_dir = runs.create_run_dir(runs_dir, "planted")
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE,
                           {"config": config.to_dict(), "data": data_summary})
    runs.write_status(run_dir, runs.STATUS_INTERRUPTED, reason="interrupted (Ctrl-C / SIGINT)")
    (run_dir / runs.HISTORY_FILE).write_text("epoch,seconds,loss\n1,1.0,2.3\n")  # epoch 1 done
    (run_dir / runs.CHECKPOINT_DIR).mkdir()
    _lambda_model_file(run_dir / runs.CHECKPOINT_DIR / "epoch_001.keras")

    result = kexp_in_process(capsys, "train", "--resume", run_dir.name, "--runs-dir", runs_dir)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Refused to load" in result.stderr and "`Lambda` layer" in result.stderr
    assert "safe_mode=False" not in result.stderr
    assert runs.read_status(run_dir)["status"] == runs.STATUS_INTERRUPTED
    assert (run_dir / runs.HISTORY_FILE).read_text() == "epoch,seconds,loss\n1,1.0,2.3\n"


def test_kexp_never_turns_keras_safe_mode_off():
    sources = sorted((REPO_ROOT / "kexp").rglob("*.py"))  # subpackages included
    assert REPO_ROOT / "kexp" / "experiments" / "compare" / "ray_worker.py" in sources
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert "safe_mode=False" not in text and "enable_unsafe_deserialization" not in text, \
            source
