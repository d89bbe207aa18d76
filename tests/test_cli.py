"""The command line a user types: fast help, clear errors, and `make visualize`."""

import shutil
import subprocess

import pytest

from helpers import run_kexp, run_python


def test_help_answers_without_importing_tensorflow():
    code = ("import sys, contextlib, io\nfrom kexp import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: cli.main(['--help'])\n    except SystemExit: pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    result = run_python(code, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
    help_text = " ".join(run_kexp("train", "--help").stdout.split())
    assert "--init" in help_text and "default: glorot_uniform" in help_text


def test_initializers_command_lists_the_theory():
    result = run_kexp("initializers")
    assert result.returncode == 0
    assert "glorot_uniform     U(-0.1421, 0.1421)" in result.stdout


def test_make_visualize_recreates_deleted_figures(repo_root, trained_run):
    figures = trained_run / "figures"
    shutil.rmtree(figures)
    result = subprocess.run(["make", "-s", "visualize", f"RUNS_DIR={trained_run.parent}",
                             f"RUN={trained_run.name}"], cwd=repo_root, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    drawn = sorted(path.name for path in figures.iterdir())
    assert drawn == ["conv1_before_after.png", "conv2_before_after.png", "conv2_summary.png",
                     "feature_maps.png", "forces.png", "histograms.png", "optimal_inputs.png",
                     "top_patches.png"]
    assert all((figures / name).stat().st_size > 10_000 for name in drawn)


def test_visualize_does_not_import_tensorflow(trained_run):
    code = ("import sys\nfrom kexp import cli\n"
            f"cli.main(['visualize', '--runs-dir', {str(trained_run.parent)!r}, "
            f"{trained_run.name!r}])\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "drew conv1_before_after.png" in result.stdout
    assert "feature_maps.png, top_patches.png, optimal_inputs.png" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_visualize_draws_a_run_outside_the_runs_dir(tmp_path, trained_run):
    """A path to a run folder works wherever the run lives."""
    run_dir = shutil.copytree(trained_run, tmp_path / "elsewhere" / trained_run.name)
    result = run_kexp("visualize", "--runs-dir", str(tmp_path / "empty"), str(run_dir))
    assert result.returncode == 0, result.stderr
    assert f"{run_dir}: drew conv1_before_after.png" in result.stdout


def test_runs_lists_the_finished_run(trained_run):
    result = run_kexp("runs", "--runs-dir", str(trained_run.parent))
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if trained_run.name in line)
    assert "finished" in line


def _crash_leftovers(root, trained_run):
    """A runs folder as crashes leave it, oldest first: a run killed before its first snapshot
    (no initial.npz), one killed during its first epoch (initial.npz only), then a whole run."""
    from kexp.storage import atomic, runs

    before_snapshot = root / "20260101-000000-glorot_uniform-before"
    first_epoch = root / "20260101-000001-glorot_uniform-first"
    for run_dir in (before_snapshot, first_epoch):
        (run_dir / runs.KERNELS_DIR).mkdir(parents=True)
        (run_dir / runs.FIGURES_DIR).mkdir()
        shutil.copy(trained_run / runs.CONFIG_FILE, run_dir / runs.CONFIG_FILE)
        atomic.write_json_atomic(run_dir / runs.STATUS_FILE, {"status": "running", "pid": 2**22 + 7,
                                                            "host": "elsewhere"})
    shutil.copy(trained_run / runs.KERNELS_DIR / "initial.npz", first_epoch / runs.KERNELS_DIR)
    whole = shutil.copytree(trained_run, root / "20260102-000000-glorot_uniform-whole")
    shutil.rmtree(whole / runs.FIGURES_DIR)
    return before_snapshot, first_epoch, whole


def test_visualize_all_draws_every_drawable_run_and_names_the_others(tmp_path, trained_run,
                                                                     capsys):
    from kexp import cli

    root = tmp_path / "runs"
    before_snapshot, first_epoch, whole = _crash_leftovers(root, trained_run)

    assert cli.main(["visualize", "all", "--runs-dir", str(root)]) == 0
    out, err = capsys.readouterr()
    assert f"{whole}: drew conv1_before_after.png" in out
    assert sorted(path.name for path in (whole / "figures").glob("*.png")) == \
        sorted(path.name for path in (trained_run / "figures").glob("*.png"))  # every figure
    not_drawn = [line for line in err.splitlines() if line.startswith("kexp visualize: not drawn")]
    assert len(not_drawn) == 2, err
    assert before_snapshot.name in not_drawn[0] and "found in kernels/: none" in not_drawn[0]
    assert first_epoch.name in not_drawn[1] and "found in kernels/: initial)" in not_drawn[1]
    assert "drew 1 of 3 runs" in err

    # One run asked for by name that cannot be drawn: an error, exit 2, no traceback.
    assert cli.main(["visualize", before_snapshot.name, "--runs-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no kernels before and after training" in err
    shutil.rmtree(whole)
    assert cli.main(["visualize", "all", "--runs-dir", str(root)]) == 2  # nothing drawable
    assert "drew 0 of 2 runs" in capsys.readouterr().err
