"""train(config) -> run folder: the one place where data, model and callbacks meet.

Read top to bottom: validate, load data, build the model, create the run folder, fit with the
kernel snapshots, then evaluate, save and draw. Keras does not end a run cleanly on Ctrl-C or on an
error (`on_train_end` is skipped), so this loop does it: the run is marked interrupted or failed,
the kernels at that moment are saved, and `resume` continues from the last completed epoch.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import sys
import time
from pathlib import Path

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from kexp import shell_commands
from kexp.config import TrainConfig, check_memory
from kexp.digits import data, inputs
from kexp.network import saving
from kexp.network.models import build_model
from kexp.probes import filter_views
from kexp.storage import atomic, background_writes, files, run_lock, runs
from kexp.training import callbacks, checkpoint, forces, stop_signals
from kexp.training.optimal_inputs_thread import OptimalInputsThread
from kexp.views import plots, run_page
from kexp.views.run_replay import RunReplay


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after a stop signal (Ctrl-C, SIGTERM, SIGHUP) once the run folder records it;
    carries the run folder and the signal's number."""

    def __init__(self, run_dir: Path, signal_number: int = signal.SIGINT):
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.signal_number = signal_number


def _versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "matplotlib": matplotlib.__version__, "platform": platform.platform()}


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a float, or a Keras schedule over the planned steps. The
    schedule reads the optimizer's step counter, which the checkpoint saves, so a resumed run
    continues it where it stopped."""
    if config.schedule == "constant":
        return config.learning_rate
    warmup_steps = config.warmup_epochs * steps_per_epoch
    decay_steps = config.epochs * steps_per_epoch - warmup_steps
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps, warmup_target=config.learning_rate, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps)


def _set_determinism(config: TrainConfig) -> None:
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def build_configured_model(config: TrainConfig, prepared: inputs.PreparedData):
    """The compiled model `config` describes, with its learning-rate schedule over `prepared`'s
    steps (also what `make bench` fits without kexp's callbacks)."""
    init, init_conv2 = config.init_specs  # parsed once, by config.validate
    return build_model(config.model, init=init, init_conv2=init_conv2,
                       conv2_filters=config.conv2_filters, freeze=config.freeze,
                       learning_rate=learning_rate_schedule(
                           config, inputs.steps_per_epoch(config, prepared)),
                       seed=config.seed)


def _fit(model, config: TrainConfig, prepared: inputs.PreparedData, run_dir: Path,
         first_epoch: int, extra_callbacks=(), verbose: int | str = "auto") -> None:
    pipelines = inputs.input_pipelines(config, prepared, first_epoch)
    # Order per epoch: snapshot, history row, finiteness check, then checkpoint. One background
    # writer lands their files in that order, so a stop between them leaves the history at most
    # one row ahead of the checkpoint, and resume trims it; the other way round a resumed run
    # would lose that epoch's row. A diverged epoch is recorded (its row shows the NaN) but never
    # checkpointed.
    writer = background_writes.OrderedWriter()
    snapshots = callbacks.KernelSnapshots(run_dir / runs.KERNELS_DIR,
                                          every_epochs=config.snapshot_every_epochs,
                                          every_batches=config.snapshot_every_batches,
                                          writer=writer)
    # A stop signal that came during an epoch's last batch is raised after that epoch's files.
    fit_callbacks = [snapshots, callbacks.EpochLog(run_dir / runs.HISTORY_FILE, writer=writer),
                     callbacks.StopOnNonFinite(),
                     checkpoint.EpochCheckpoint(run_dir / runs.CHECKPOINT_DIR, writer=writer),
                     forces.run_force_snapshots(run_dir, prepared.x_train, prepared.y_train,
                                                config.epochs, first_epoch, writer),
                     callbacks.StopWhenRequested(), *extra_callbacks]
    if config.tensorboard:
        fit_callbacks.append(callbacks.tensorboard(run_dir / runs.TENSORBOARD_DIR))
    try:
        with stop_signals.deferred():  # a stop signal is raised between steps, not inside them
            model.fit(pipelines.train_batches, epochs=config.epochs, initial_epoch=first_epoch,
                      steps_per_epoch=pipelines.steps_per_epoch,
                      validation_data=pipelines.validation_batches,
                      callbacks=fit_callbacks, verbose=verbose, shuffle=False)
    except BaseException as error:  # Keras skips on_train_end: land what is being written
        with contextlib.suppress(Exception):  # the stop's own reason is the one to report
            writer.wait()
        if isinstance(error, KeyboardInterrupt):
            snapshots.save(runs.INTERRUPTED)
        raise


def _finish(model, config: TrainConfig, prepared: inputs.PreparedData, run_dir: Path,
            started: float, replay: RunReplay) -> dict:
    # The only time the test digits are touched.
    test_loss, test_accuracy = model.evaluate(data.to_model_inputs(prepared.x_test),
                                              prepared.y_test, verbose=0,
                                              batch_size=config.batch_size)
    history = runs.read_history(run_dir)
    saving.save_model_atomic(model, run_dir / runs.MODEL_FILE)
    metrics = {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy),
               "train_accuracy": history[-1].get("accuracy") if history else None,
               "epochs_completed": len(history), "seconds": round(time.time() - started, 2)}
    views_started = time.perf_counter()
    # The optimal inputs (TensorFlow) are found on a thread while the figures that do not need
    # them are drawn; the optimal-inputs figure and the page wait for them through `replay`.
    with OptimalInputsThread(run_dir, model, config.seed) as optimal:
        replay.optimal_inputs_written_by(optimal.finish)
        if config.figures:  # else (--no-figures) `kexp visualize` draws them and the page
            # The page's curves first, while the ascent starts on its thread: drawn after the
            # figures, they would follow the figures' wait for the ascent at their end.
            run_page.curves_png(history, replay)
            figures_started = time.perf_counter()
            try:
                metrics["figures"] = [path.name for path in plots.render_run(run_dir, replay)]
            except atomic.DiskFull:  # not a drawing problem: the run fails and says where
                raise
            except Exception as error:  # `kexp visualize` draws them again; the run stands
                data.warn(f"figures were not drawn ({error}); run: "
                          f"{shell_commands.visualize_command(run_dir)}")
                metrics["figures_error"] = str(error)
            metrics["figures_seconds"] = round(time.perf_counter() - figures_started, 2)
        metrics.update(optimal.finish())
    metrics["views_seconds"] = round(time.perf_counter() - views_started, 2)
    return metrics


def _run(model, config, prepared, run_dir, first_epoch, extra_callbacks, verbose,
         attempt: int = 1) -> Path:
    """Fit the epochs after `first_epoch` (none when training had finished: then only the end
    of the run is redone), finish, and record how it ended. The checkpoint is removed only once
    the run is recorded finished, so an interruption before that can always be resumed."""
    started = time.time()
    replay = RunReplay(run_dir)  # the figures and then the page read and replay the run once
    runs.write_status(run_dir, runs.STATUS_RUNNING, epochs_planned=config.epochs,
                      first_epoch=first_epoch + 1, attempt=attempt)
    with stop_signals.stop_on_signals():
        try:
            if first_epoch < config.epochs:
                _fit(model, config, prepared, run_dir, first_epoch, extra_callbacks, verbose)
            elif not (run_dir / runs.KERNELS_DIR / runs.snapshot_name(runs.FINAL)).exists():
                snapshots = callbacks.KernelSnapshots(run_dir / runs.KERNELS_DIR)
                snapshots.set_model(model)
                snapshots.save(runs.FINAL)
            metrics = _finish(model, config, prepared, run_dir, started, replay)
        except KeyboardInterrupt as interruption:  # Ctrl-C, SIGTERM or SIGHUP
            _record_interruption(run_dir, interruption)
        except BaseException as error:
            try:
                runs.write_status(run_dir, runs.STATUS_FAILED,
                                  reason=f"{type(error).__name__}: {error}",
                                  epochs_completed=len(runs.read_history(run_dir)))
            except atomic.DiskFull as full:  # the disk is too full even for status.json
                data.warn(f"{full} The run's status.json still says running; `kexp runs` "
                          "shows it as crashed.")
            raise
    runs.write_status(run_dir, runs.STATUS_FINISHED, finished=runs.now_iso(), **metrics)
    _remove_checkpoint(run_dir)
    if config.figures:
        page_started = time.perf_counter()
        if _write_page(run_dir, replay):
            _record_page_seconds(run_dir, time.perf_counter() - page_started)
    return run_dir


def _record_interruption(run_dir: Path, interruption: KeyboardInterrupt) -> None:
    """Record in status.json that a stop signal ended the run, then raise TrainingInterrupted."""
    number = stop_signals.signal_of(interruption)
    runs.write_status(run_dir, runs.STATUS_INTERRUPTED,
                      epochs_completed=len(runs.read_history(run_dir)),
                      reason=f"interrupted by {signal.Signals(number).name}",
                      resume=shell_commands.resume_command(run_dir))
    raise TrainingInterrupted(run_dir, number) from None


def _write_page(run_dir: Path, replay: RunReplay | None = None) -> bool:
    """The run's index.html, written once status.json holds the test accuracy it shows; True
    where it was. Like the figures, a page that fails is a warning: the run stands and `kexp
    visualize` writes it."""
    try:
        run_page.write_run_page(run_dir, replay)
        return True
    except Exception as error:
        data.warn(f"the run's page was not written ({error}); run: "
                  f"{shell_commands.visualize_command(run_dir)}")
        return False


def _record_page_seconds(run_dir: Path, seconds: float) -> None:
    """status.json gains page_seconds, what the end of the training spent on its page (make
    bench reads it). The run is already recorded finished: a disk too full for this is a
    warning, not a failed run."""
    try:
        runs.write_status(run_dir, runs.STATUS_FINISHED, page_seconds=round(seconds, 2))
    except atomic.DiskFull as full:
        data.warn(f"{full} status.json lacks page_seconds; the run and its page stand.")


def _remove_checkpoint(run_dir: Path) -> None:
    """Delete the training state of a run recorded finished: it cannot be resumed any more."""
    folder = run_dir / runs.CHECKPOINT_DIR
    for stale in checkpoint.EpochCheckpoint.checkpoints(folder):
        stale.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def train(config: TrainConfig, extra_callbacks=(), verbose: int | str = "auto") -> Path:
    """Train `config` and return its run folder. Nothing is created before the config and the
    data have been checked."""
    check_memory(config.validate())
    prepared, data_summary = inputs.prepare_data(config)
    runs.prepare_runs_root(config.runs_dir)  # an unwritable --runs-dir fails before the build
    _set_determinism(config)
    model = build_configured_model(config, prepared)
    # The stop signals' handlers are in place before the run folder exists, and a signal that
    # arrives while it is being set up waits until status.json says the run started: however
    # early it comes, the run reads as interrupted (and resumable), never as crashed.
    with stop_signals.stop_on_signals(), contextlib.ExitStack() as lock:
        try:
            with stop_signals.deferred():
                run_dir = runs.create_run_dir(config.runs_dir, config.init_specs[0].name)
                lock.enter_context(run_lock.hold(run_dir))
                atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, {
                    "config": config.to_dict(), "data": data_summary,
                    "versions": _versions(), "created": runs.now_iso(), "command": sys.argv})
                filter_views.write_probe_digits(run_dir, prepared.x_test, prepared.y_test)
                runs.write_status(run_dir, runs.STATUS_RUNNING, epochs_planned=config.epochs,
                                  first_epoch=1, attempt=1)
                print(f"kexp: run folder {run_dir}", flush=True)
                print(f"kexp: data {data_summary['description']}; training on "
                      f"{data_summary['used_train_samples']}, validating on "
                      f"{data_summary['used_validation_samples']}, testing on "
                      f"{data_summary['used_test_samples']} once at the end", flush=True)
            return _run(model, config, prepared, run_dir, 0, extra_callbacks, verbose)
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt as interruption:  # before _run's own handling took over
            _record_interruption(run_dir, interruption)


def resume(run_dir: Path, extra_callbacks=(), verbose: int | str = "auto") -> Path:
    """Continue an interrupted, failed or crashed run from its last completed epoch (a run whose
    training had finished only redoes its end: evaluation, model and figures). The run folder is
    locked first: a second process resuming it is refused."""
    run_dir = Path(run_dir)
    with run_lock.hold(run_dir):
        return _resume_locked(run_dir, extra_callbacks, verbose)


def _resume_locked(run_dir: Path, extra_callbacks, verbose) -> Path:
    runs.check_run_folders(run_dir)
    status = runs.read_status(run_dir)
    if status["status"] == runs.STATUS_RUNNING and status.get("host") == socket.gethostname():
        status["status"] = runs.STATUS_CRASHED  # this process holds its lock: the writer is gone
    if status.get("status") in (runs.STATUS_FINISHED, runs.STATUS_RUNNING):
        raise runs.RunError(f"Invalid value for `resume`: '{run_dir}' is {status['status']}. "
                            "Expected an interrupted, failed or crashed run.")
    config, recorded = runs.read_config(run_dir), runs.read_data_record(run_dir)
    first_epoch, checkpoint_file = _checkpoint_to_resume(run_dir, config)
    prepared, data_summary = inputs.prepare_data(config)
    if data_summary["sha256"] != recorded["sha256"]:
        raise runs.RunError(f"Cannot resume '{run_dir}': its data was "
                            f"{recorded['source']} ({recorded['sha256'][:12]}), "
                            f"but now {data_summary['source']} loads "
                            f"({data_summary['sha256'][:12]}).")
    _set_determinism(config)
    if checkpoint_file is not None and checkpoint_file.suffix == ".keras":  # an older kexp's
        model = saving.load_model(checkpoint_file)  # safe mode: a Lambda layer is refused
    else:
        model = build_configured_model(config, prepared)
        if checkpoint_file is not None:
            checkpoint.restore_training_state(model, checkpoint_file)
    trim_history(run_dir, first_epoch)
    if not (run_dir / runs.VIEWS_DIR / runs.PROBE_DIGITS_FILE).exists():  # a run of kexp <= 0.1
        filter_views.write_probe_digits(run_dir, prepared.x_test, prepared.y_test)
    attempt = status.get("attempt") or 1
    kernels = run_dir / runs.KERNELS_DIR
    if (kernels / runs.snapshot_name(runs.INTERRUPTED)).exists():  # not part of this attempt
        os.replace(kernels / runs.snapshot_name(runs.INTERRUPTED),
                   kernels / runs.snapshot_name(runs.archived_interrupted_label(attempt)))
    done = "; its training had finished: only evaluating and drawing" * (
        first_epoch == config.epochs)
    print(f"kexp: resuming {run_dir} after epoch {first_epoch} of {config.epochs}{done}",
          flush=True)
    return _run(model, config, prepared, run_dir, first_epoch, extra_callbacks, verbose,
                attempt + 1)


def _checkpoint_to_resume(run_dir: Path, config: TrainConfig) -> tuple[int, Path | None]:
    """(completed epochs, checkpoint) a resume starts from, after reading every kernel snapshot
    (a resume must not build on a damaged record). No checkpoint means epoch 0, but only where
    the run stopped in or right after its first epoch (the history row is written just before
    the checkpoint): a run whose checkpoint is gone is refused, never retrained from scratch."""
    for _, path in runs.snapshot_sequence(run_dir):
        runs.load_kernels(path)
    completed = len(runs.read_history(run_dir))
    latest = checkpoint.EpochCheckpoint.latest(run_dir / runs.CHECKPOINT_DIR)
    if latest is None:
        if completed > 1:
            raise runs.RunError(
                f"Cannot resume '{run_dir}': {completed} epoch(s) were completed, but "
                f"'{run_dir / runs.CHECKPOINT_DIR}' holds no checkpoint to continue from "
                "(deleted?). Expected the checkpoint of its last epoch; train a new run.")
        print(f"kexp: {run_dir} has no checkpoint yet: it starts again from epoch 1", flush=True)
        return 0, None
    first_epoch, path = latest
    if first_epoch > config.epochs:
        raise runs.RunError(f"Cannot resume '{run_dir}': its checkpoint {path.name} is after "
                            f"epoch {first_epoch} of the {config.epochs} planned. Expected a "
                            "checkpoint written by this run.")
    if completed < first_epoch:  # a crash tears at most the last row, never earlier ones
        raise runs.RunError(f"Cannot resume '{run_dir}': its {runs.HISTORY_FILE} holds "
                            f"{completed} whole row(s), but its checkpoint is after epoch "
                            f"{first_epoch}. Expected a row per completed epoch (the file was "
                            "cut or edited); train a new run.")
    return first_epoch, path


def trim_history(run_dir: Path, epochs_kept: int) -> None:
    """Drop history rows after the checkpoint a resumed run starts from (none, normally), and a
    last row cut short by a crash, so the resumed run appends to whole rows."""
    path = run_dir / runs.HISTORY_FILE
    if not path.exists():
        return
    with open(path, newline="", encoding="utf-8") as handle:
        text = handle.read()
    lines = files.complete_lines(text).splitlines(keepends=True)
    kept = "".join(lines[:epochs_kept + 1]) if epochs_kept else ""  # header + rows
    if kept != text:
        atomic.write_bytes_atomic(path, kept.encode())
