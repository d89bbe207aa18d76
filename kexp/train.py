"""train(config) -> run folder: the one place where data, model and callbacks meet.

Read top to bottom: validate, load data, build the model, create the run folder, fit with the
kernel snapshots, then evaluate, save and draw. Keras does not end a run cleanly on Ctrl-C or on an
error (`on_train_end` is skipped), so this loop does it: the run is marked interrupted or failed,
the kernels at that moment are saved, and `resume` continues from the last completed epoch.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from kexp import data, runs
from kexp.config import TrainConfig

CHECKPOINT_DIR = "checkpoint"
TENSORBOARD_DIR = "tensorboard"


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after a Ctrl-C once the run folder records it; carries the run folder."""

    def __init__(self, run_dir: Path):
        super().__init__(str(run_dir))
        self.run_dir = run_dir


def _versions() -> dict:
    import keras
    import matplotlib
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "matplotlib": matplotlib.__version__, "platform": platform.platform()}


def epoch_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                  first_epoch: int, epochs: int):
    """A tf.data pipeline over epochs first_epoch..epochs-1 whose order in epoch e is a
    permutation seeded by (seed, e): a new order every epoch (a seeded `fit(shuffle=True)`
    repeats one, tensorflow#35682) and the same orders again when a run is resumed."""
    import tensorflow as tf

    count = len(images)
    images_tensor = tf.constant(images)
    labels_tensor = tf.constant(labels)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    return (tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(one_epoch)
            .map(lambda batch: (tf.gather(images_tensor, batch), tf.gather(labels_tensor, batch)),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def prepare_data(config: TrainConfig) -> tuple[data.Dataset, dict]:
    """Load and trim the data as `config` says; returns the dataset and what config.json records."""
    dataset = data.load(config.data)
    summary = dataset.summary()
    dataset.x_train, dataset.y_train = data.subsample(
        dataset.x_train, dataset.y_train, config.train_samples, config.seed)
    dataset.x_test, dataset.y_test = data.subsample(
        dataset.x_test, dataset.y_test, config.test_samples, config.seed)
    summary.update(used_train_samples=len(dataset.x_train), used_test_samples=len(dataset.x_test))
    return dataset, summary


def _set_determinism(config: TrainConfig) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _build(config: TrainConfig):
    from kexp.models import build_model

    return build_model(config.model, init=config.init, init_conv2=config.init_conv2,
                       conv2_filters=config.conv2_filters, freeze=config.freeze,
                       learning_rate=config.learning_rate, seed=config.seed)


def _fit(model, config: TrainConfig, dataset: data.Dataset, run_dir: Path, first_epoch: int,
         extra_callbacks=(), verbose: int | str = "auto") -> None:
    import tensorflow as tf

    from kexp import callbacks

    x_train = data.to_model_inputs(dataset.x_train)
    x_test = data.to_model_inputs(dataset.x_test)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    train_batches = epoch_batches(x_train, dataset.y_train, config.batch_size, config.seed,
                                  first_epoch, config.epochs)
    test_batches = tf.data.Dataset.from_tensor_slices(
        (x_test, dataset.y_test)).batch(config.batch_size).cache()
    snapshots = callbacks.KernelSnapshots(run_dir / runs.KERNELS_DIR,
                                          every_epochs=config.snapshot_every_epochs,
                                          every_batches=config.snapshot_every_batches)
    # Order per epoch: snapshot, history row, then checkpoint. A stop between them leaves the
    # history at most one row ahead of the checkpoint, and resume trims it; the other way round
    # a resumed run would lose that epoch's row.
    fit_callbacks = [snapshots, callbacks.EpochLog(run_dir / runs.HISTORY_FILE),
                     callbacks.EpochCheckpoint(run_dir / CHECKPOINT_DIR), *extra_callbacks]
    if config.tensorboard:
        fit_callbacks.append(callbacks.tensorboard(run_dir / TENSORBOARD_DIR))
    try:
        model.fit(train_batches, epochs=config.epochs, initial_epoch=first_epoch,
                  steps_per_epoch=steps_per_epoch, validation_data=test_batches,
                  callbacks=fit_callbacks, verbose=verbose, shuffle=False)
    except KeyboardInterrupt:
        snapshots.save(callbacks.INTERRUPTED)
        raise


def _finish(model, config: TrainConfig, dataset: data.Dataset, run_dir: Path,
            started: float) -> dict:
    from kexp import callbacks, plots

    x_test = data.to_model_inputs(dataset.x_test)
    test_loss, test_accuracy = model.evaluate(x_test, dataset.y_test, verbose=0,
                                              batch_size=config.batch_size)
    history = runs.read_history(run_dir)
    callbacks.save_model_atomic(model, run_dir / runs.MODEL_FILE)
    for stale in (run_dir / CHECKPOINT_DIR).glob("*.keras"):
        stale.unlink()
    (run_dir / CHECKPOINT_DIR).rmdir()
    metrics = {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy),
               "train_accuracy": history[-1].get("accuracy") if history else None,
               "epochs_completed": len(history), "seconds": round(time.time() - started, 2)}
    try:
        metrics["figures"] = [path.name for path in plots.render_run(run_dir)]
    except Exception as error:  # figures can be re-made with `kexp visualize`; the run stands
        data.warn(f"figures were not drawn ({error}); run: make visualize RUN={run_dir}")
        metrics["figures_error"] = str(error)
    return metrics


def _run(model, config, dataset, run_dir, first_epoch, extra_callbacks, verbose) -> Path:
    started = time.time()
    runs.write_status(run_dir, runs.STATUS_RUNNING, epochs_planned=config.epochs,
                      first_epoch=first_epoch + 1)
    try:
        _fit(model, config, dataset, run_dir, first_epoch, extra_callbacks, verbose)
        metrics = _finish(model, config, dataset, run_dir, started)
    except KeyboardInterrupt:
        runs.write_status(run_dir, runs.STATUS_INTERRUPTED,
                          epochs_completed=len(runs.read_history(run_dir)),
                          reason="interrupted (Ctrl-C / SIGINT)",
                          resume=f"python -m kexp train --resume {run_dir}")
        raise TrainingInterrupted(run_dir) from None
    except BaseException as error:
        runs.write_status(run_dir, runs.STATUS_FAILED, reason=f"{type(error).__name__}: {error}",
                          epochs_completed=len(runs.read_history(run_dir)))
        raise
    runs.write_status(run_dir, runs.STATUS_FINISHED, finished=runs.now_iso(), **metrics)
    return run_dir


def train(config: TrainConfig, extra_callbacks=(), verbose: int | str = "auto") -> Path:
    """Train `config` and return its run folder. Nothing is created before the config and the
    data have been checked."""
    config.validate()
    dataset, data_summary = prepare_data(config)
    runs.prepare_runs_root(config.runs_dir)  # an unwritable --runs-dir fails before the build
    _set_determinism(config)
    model = _build(config)
    run_dir = runs.create_run_dir(config.runs_dir, config.init.split(":")[0])
    runs.write_json_atomic(run_dir / runs.CONFIG_FILE, {
        "config": config.to_dict(), "data": data_summary, "versions": _versions(),
        "created": runs.now_iso(), "command": sys.argv})
    print(f"kexp: run folder {run_dir}", flush=True)
    print(f"kexp: data {data_summary['description']}; training on "
          f"{data_summary['used_train_samples']}, testing on "
          f"{data_summary['used_test_samples']}", flush=True)
    return _run(model, config, dataset, run_dir, 0, extra_callbacks, verbose)


def resume(run_dir: Path, extra_callbacks=(), verbose: int | str = "auto") -> Path:
    """Continue an interrupted, failed or crashed run from its last completed epoch."""
    from kexp import callbacks

    run_dir = Path(run_dir)
    status = runs.read_status(run_dir)
    if status.get("status") in (runs.STATUS_FINISHED, runs.STATUS_RUNNING):
        raise runs.RunError(f"Invalid value for `resume`: '{run_dir}' is {status['status']}. "
                            "Expected an interrupted, failed or crashed run.")
    recorded = runs.read_json(run_dir / runs.CONFIG_FILE)
    config = TrainConfig.from_dict(recorded["config"]).validate()
    dataset, data_summary = prepare_data(config)
    if data_summary["sha256"] != recorded["data"]["sha256"]:
        raise runs.RunError(f"Cannot resume '{run_dir}': its data was "
                            f"{recorded['data']['source']} ({recorded['data']['sha256'][:12]}), "
                            f"but now {data_summary['source']} loads "
                            f"({data_summary['sha256'][:12]}).")
    _set_determinism(config)
    latest = callbacks.EpochCheckpoint.latest(run_dir / CHECKPOINT_DIR)
    if latest is None:
        model, first_epoch = _build(config), 0
    else:
        first_epoch, path = latest
        model = callbacks.load_model(path)  # safe mode: a Lambda layer is refused
    _trim_history(run_dir, first_epoch)
    print(f"kexp: resuming {run_dir} after epoch {first_epoch} of {config.epochs}", flush=True)
    return _run(model, config, dataset, run_dir, first_epoch, extra_callbacks, verbose)


def _trim_history(run_dir: Path, epochs_kept: int) -> None:
    """Drop history rows after the checkpoint a resumed run starts from (none, normally)."""
    rows = runs.read_history(run_dir)
    if len(rows) <= epochs_kept:
        return
    lines = (run_dir / runs.HISTORY_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    runs.write_bytes_atomic(run_dir / runs.HISTORY_FILE,
                            "".join(lines[:epochs_kept + 1]).encode())
