"""The end of a training finds the optimal inputs on a thread while it draws the other figures
(kexp.training.optimal_inputs_thread): the two overlap, the optimal-inputs figure waits for
them, a stop signal stops the ascent and leaves nothing half-done, and a failure is reported."""

import threading

import pytest

from kexp import shell_commands
from kexp.config import TrainConfig
from kexp.probes import keras_views
from kexp.storage import runs

from helpers import TINY_TRAINING

pytestmark = pytest.mark.slow

HANDSHAKE_SECONDS = 120  # a handshake that never comes fails the test instead of hanging it


def tiny_config(tmp_path, figures: bool) -> TrainConfig:
    return TrainConfig(**TINY_TRAINING, model="convnet", batch_size=64, epochs=1,
                       figures=figures, runs_dir=str(tmp_path / "runs"))


def ascent_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "kexp-optimal-inputs"]


def test_the_figures_are_drawn_while_the_optimal_inputs_are_found(tmp_path, monkeypatch):
    """The ascent starts only once the first figure is drawn: were the figures drawn after it
    (one after the other), the handshake would never come and the run would have no optimal
    inputs. The optimal-inputs figure, drawn later, waits for them."""
    from kexp.training.trainer import train
    from kexp.views import plots

    first_figure_drawn, seen = threading.Event(), {}
    real_ascent, real_grids = keras_views.write_optimal_inputs, plots.plot_filter_grids

    def ascent_after_the_first_figure(run_dir, model, seed=0, stop=None):
        seen["thread"] = threading.current_thread().name
        seen["handshake"] = first_figure_drawn.wait(HANDSHAKE_SECONDS)
        return real_ascent(run_dir, model, seed, stop=stop)

    def grids_then_tell(*args, **kwargs):
        drawn = real_grids(*args, **kwargs)
        first_figure_drawn.set()
        return drawn

    monkeypatch.setattr(keras_views, "write_optimal_inputs", ascent_after_the_first_figure)
    monkeypatch.setattr(plots, "plot_filter_grids", grids_then_tell)
    run_dir = train(tiny_config(tmp_path, figures=True), verbose=0)

    assert seen == {"thread": "kexp-optimal-inputs", "handshake": True}
    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED
    assert "optimal_inputs_error" not in status and "figures_error" not in status, status
    assert runs.OPTIMAL_INPUTS_FIGURE in status["figures"]
    assert (run_dir / runs.FIGURES_DIR / runs.OPTIMAL_INPUTS_FIGURE).is_file()
    assert (run_dir / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).is_file()
    assert 0 < status["optimal_inputs_seconds"] <= status["views_seconds"]
    assert 0 < status["figures_seconds"] <= status["views_seconds"]
    assert "optimal inputs" in (run_dir / runs.PAGE_FILE).read_text()
    assert not ascent_threads()


def test_a_stop_signal_while_drawing_stops_the_ascent_and_writes_no_optimal_inputs(
        tmp_path, monkeypatch):
    """Ctrl-C lands in the main thread, in a figure; the run is recorded interrupted only
    after the ascent has stopped at its next step, with no optimal_inputs.npz."""
    from kexp.training.trainer import TrainingInterrupted, train
    from kexp.views import plots

    ascent_started, ended = threading.Event(), {}
    real_ascent = keras_views.write_optimal_inputs

    def ascent_that_waits_for_the_stop(run_dir, model, seed=0, stop=None):
        ascent_started.set()
        ended["stop asked"] = stop.wait(HANDSHAKE_SECONDS)
        try:
            return real_ascent(run_dir, model, seed, stop=stop)
        except BaseException as error:
            ended["with"] = type(error)
            raise

    def ctrl_c_in_a_figure(*args, **kwargs):
        assert ascent_started.wait(HANDSHAKE_SECONDS)
        raise KeyboardInterrupt

    monkeypatch.setattr(keras_views, "write_optimal_inputs", ascent_that_waits_for_the_stop)
    monkeypatch.setattr(plots, "render_run", ctrl_c_in_a_figure)
    with pytest.raises(TrainingInterrupted) as interrupted:
        train(tiny_config(tmp_path, figures=True), verbose=0)

    assert ended == {"stop asked": True, "with": keras_views.AscentStopped}
    run_dir = interrupted.value.run_dir
    assert runs.read_status(run_dir)["status"] == runs.STATUS_INTERRUPTED
    assert not (run_dir / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).exists()
    assert not list((run_dir / runs.VIEWS_DIR).glob(".*")), "a temporary file was left"
    assert not ascent_threads()


def test_an_ascent_that_fails_leaves_a_finished_run_that_says_how_to_compute_them(
        tmp_path, monkeypatch, capsys):
    """With --no-figures too: the thread's error reaches status.json and the terminal."""
    from kexp.training.trainer import train

    def failing_ascent(run_dir, model, seed=0, stop=None):
        raise RuntimeError("no gradient reached the input")

    monkeypatch.setattr(keras_views, "write_optimal_inputs", failing_ascent)
    run_dir = train(tiny_config(tmp_path, figures=False), verbose=0)

    status = runs.read_status(run_dir)
    assert status["status"] == runs.STATUS_FINISHED
    assert status["optimal_inputs_error"] == "no gradient reached the input"
    err = capsys.readouterr().err
    assert err.count("optimal inputs were not computed (no gradient reached the input)") == 1
    assert shell_commands.explain_command(run_dir) in err
    assert not ascent_threads()
