"""Hostile and damaged inputs, one test per cause: each tries the cases a careless or hostile user
met and more of the same kind. What every case gets: one line naming the bad value or file and
what to do, a non-zero exit (2 for bad input), and nothing lost or half-written. (The hostile
moments of processes are test_hostile_processes', printed hints test_pasted_commands'.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kexp import cli
from kexp.storage import runs

from helpers import copy_run, error_line, lines


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def rewrite(path: Path, change) -> None:
    """Write the arrays of npz `path` again after `change(arrays)` (a dict it edits)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    change(arrays)
    path.unlink()
    np.savez(path, **arrays)


def rename_keys(arrays: dict) -> None:
    for key in list(arrays):
        arrays[key.replace("/", "_")] = arrays.pop(key)


def object_array(arrays: dict) -> None:
    arrays[next(iter(arrays))] = np.array([{"pickled": 1}, None], dtype=object)


def drop_before(arrays: dict) -> None:
    for key in [key for key in arrays if "/before/" in key]:
        del arrays[key]


def transpose_images(arrays: dict) -> None:
    arrays["images"] = np.ascontiguousarray(arrays["images"].transpose(1, 2, 0))


def float_images(arrays: dict) -> None:
    arrays["images"] = arrays["images"].astype(np.float64)


def short_labels(arrays: dict) -> None:
    arrays["labels"] = arrays["labels"][:3]


OPTIMAL, PROBES = runs.OPTIMAL_INPUTS_FILE, runs.PROBE_DIGITS_FILE
# (views file, damage): the cases of issue 22 first, then more of the same cause.
VIEW_DAMAGES = {
    (OPTIMAL, "truncated"): truncate,
    (OPTIMAL, "wrong key names"): lambda path: rewrite(path, rename_keys),
    (OPTIMAL, "an object array"): lambda path: rewrite(path, object_array),
    (OPTIMAL, "no before state"): lambda path: rewrite(path, drop_before),
    (PROBES, "truncated"): truncate,
    (PROBES, "misshapen images"): lambda path: rewrite(path, transpose_images),
    (PROBES, "float images"): lambda path: rewrite(path, float_images),
    (PROBES, "labels not one per digit"): lambda path: rewrite(path, short_labels),
    (PROBES, "a directory"): lambda path: (path.unlink(), path.mkdir()),
    (OPTIMAL, "empty"): lambda path: path.write_bytes(b""),
}


def test_views_files_go_through_the_checked_reader(trained_run, tmp_path, capsys):
    """Cause 1: views/*.npz read with a bare np.load. Each damaged views file ends `visualize
    RUN` with one line naming it and `kexp explain` (exit 2); `visualize all` names each damaged
    run and draws the others; a damaged forces.npz is a note and the rest is drawn."""
    runs_dir = tmp_path / "runs"
    damaged = {}
    for index, ((name, damage), apply) in enumerate(VIEW_DAMAGES.items()):
        run_dir = copy_run(trained_run, runs_dir, f"{index:02d}-{trained_run.name}")
        apply(run_dir / runs.VIEWS_DIR / name)
        damaged[run_dir] = (name, damage)
    good = copy_run(trained_run, runs_dir, f"99-{trained_run.name}")
    for run_dir, (name, damage) in damaged.items():
        code = cli.main(["visualize", str(run_dir), "--runs-dir", str(runs_dir)])
        out, err = capsys.readouterr()
        case = f"{damage} {name}: {err}"
        assert code == 2 and len(lines(err)) == 1 and "Traceback" not in err, case
        assert f"{run_dir / runs.VIEWS_DIR / name}" in err and "kexp explain" in err, case

    shutil.rmtree(good / runs.FIGURES_DIR)
    (good / runs.FIGURES_DIR).mkdir()
    assert cli.main(["visualize", "all", "--runs-dir", str(runs_dir)]) == 0
    out, err = capsys.readouterr()
    not_drawn = [line for line in lines(err) if line.startswith("kexp visualize: not drawn")]
    assert len(not_drawn) == len(damaged) and f"drew 1 of {len(damaged) + 1} runs" in err, err
    assert (good / runs.FIGURES_DIR / runs.OPTIMAL_INPUTS_FIGURE).is_file()

    # forces.npz: damaged, it costs its figure only, with a note naming it.
    for damage in (truncate, lambda path: rewrite(path, object_array),
                   lambda path: rewrite(path, lambda arrays: arrays.pop("seconds"))):
        forces = good / runs.VIEWS_DIR / runs.FORCES_FILE
        shutil.copy(trained_run / runs.VIEWS_DIR / runs.FORCES_FILE, forces)
        damage(forces)
        assert cli.main(["visualize", str(good), "--runs-dir", str(runs_dir)]) == 0
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(forces) in err and runs.FORCES_FIGURE in err, err


def test_messages_name_the_real_problem(trained_run, tmp_path, capsys):
    """Cause 9: messages that mislead. Each names what is really wrong and what to do."""
    runs_dir = tmp_path / "runs"
    # history.csv without an `epoch` column: said so, not "epoch 0 after epoch 0".
    for header in ("a,b,c", "loss,accuracy"):
        run_dir = copy_run(trained_run, runs_dir, f"history-{header.replace(',', '-')}")
        row = ",".join("1" for _ in header.split(","))
        (run_dir / runs.HISTORY_FILE).write_text(f"{header}\n{row}\n")
        code, err = error_line(capsys, "visualize", str(run_dir), "--runs-dir", str(runs_dir))
        assert code == 2 and "no `epoch` column" in err and header.replace(",", ", ") in err, err
        shutil.rmtree(run_dir)

    # A run named by a path outside --runs-dir is that run; a refusal suggests --runs-dir and
    # offers `all` only where the command takes it.
    elsewhere = copy_run(trained_run, tmp_path / "elsewhere")
    assert cli.main(["visualize", str(elsewhere), "--runs-dir", str(runs_dir)]) == 0
    assert f"{elsewhere}: drew" in capsys.readouterr().out
    for command in (["train", "--resume"], ["visualize"], ["animate"]):
        code, err = error_line(capsys, *command, str(tmp_path), "--runs-dir", str(runs_dir))
        assert code == 2 and "is not a run folder" in err and "--runs-dir DIR" in err, err
        assert ("or all" in err) == (command != ["train", "--resume"]), err

    # config.json deleted: the run is listed as damaged, and named, never "No runs".
    no_config = copy_run(trained_run, runs_dir, "no-config")
    (no_config / runs.CONFIG_FILE).unlink()
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "no-config" in out and "unreadable" in out and "config.json': it is missing" in out
    for args in (["visualize"], ["visualize", "all"], ["animate"]):
        code, err = error_line(capsys, *args, "--runs-dir", str(runs_dir))
        assert code == 2 and f"{no_config / runs.CONFIG_FILE}" in err and "No runs" not in err
    shutil.rmtree(no_config)

    # A resume that meets a file where kexp keeps a folder is refused before anything changes.
    for folder in (runs.KERNELS_DIR, runs.CHECKPOINT_DIR, runs.FIGURES_DIR):
        run_dir = copy_run(trained_run, runs_dir, f"file-for-{folder}")
        shutil.rmtree(run_dir / folder, ignore_errors=True)
        (run_dir / folder).write_text("not a folder")
        status = (run_dir / runs.STATUS_FILE).read_bytes()
        code, err = error_line(capsys, "train", "--resume", str(run_dir))
        assert code == 2 and f"'{run_dir / folder}' is a file, not a folder" in err, err
        assert (run_dir / runs.STATUS_FILE).read_bytes() == status
        shutil.rmtree(run_dir)

    # A FIFO (or a link to nothing) where an IDX file or the data should be: named as such.
    idx = tmp_path / "idx"
    idx.mkdir()
    from kexp.digits import data
    for name in data.IDX_FILES.values():
        os.mkfifo(idx / name)
    os.mkfifo(tmp_path / "mnist.npz")
    (tmp_path / "dangling.npz").symlink_to(tmp_path / "nowhere.npz")
    for source in (idx, tmp_path / "mnist.npz", tmp_path / "dangling.npz"):
        code, err = error_line(capsys, "train", "--data", str(source), "--epochs", "1",
                               "--runs-dir", str(runs_dir))
        assert code == 2 and ("not a regular file" in err or "it is missing" in err), err
        assert "missing t10k" not in err and str(source) in err, err

    # study.json with settings of the wrong type: named.
    study = runs_dir / "compare-20260101-000000"
    study.mkdir()
    for settings in ({"seeds": "abc"}, {"jobs": "two"}, ["not", "an", "object"], {"nope": 1}):
        (study / "study.json").write_text(json.dumps({"study": settings}))
        code, err = error_line(capsys, "compare", "--resume", str(study))
        assert code == 2 and f"{study / 'study.json'}" in err, err

    # --figures-dir or --runs-dir of `kexp demo` that is a file: refused by name.
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for option in ("--figures-dir", "--runs-dir"):
        code, err = error_line(capsys, "demo", "1", option, str(a_file))
        assert code == 2 and f"Invalid value for `{option[2:].replace('-', '_')}`" in err, err
        assert "Errno" not in err and a_file.read_text() == ""


def test_symlinks_follow_one_rule_in_every_command(trained_run, tmp_path, capsys):
    """Cause 2: a symlink to a run folder is that run in every command; a symlink loop or a
    link to nothing is named as such (exit 2), never a traceback or "File exists"."""
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for runs_dir, problem in ((tmp_path / "loop1", "is a symlink loop"),
                              (tmp_path / "loop1" / "runs", "is a symlink loop"),
                              (tmp_path / "dangling", "which does not exist")):
        for args in (["runs"], ["visualize"], ["visualize", "all"], ["animate"],
                     ["train", "--epochs", "1", "--data", "mnist-5k"], ["compare"]):
            code, err = error_line(capsys, *args, "--runs-dir", str(runs_dir))
            assert code == 2 and f"'{runs_dir}' is" in err and problem in err, (args, err)

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    target = copy_run(trained_run, tmp_path / "elsewhere")
    (runs_dir / "linked").symlink_to(target)
    (runs_dir / "looped").symlink_to(tmp_path / "loop1")
    (runs_dir / "gone").symlink_to(tmp_path / "nowhere")
    shutil.rmtree(target / runs.FIGURES_DIR)
    (target / runs.FIGURES_DIR).mkdir()
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    listed = {line.split()[0]: line for line in lines(capsys.readouterr().out)[1:]}
    assert " finished " in listed["linked"]
    assert "unreadable" in listed["looped"] and "is a symlink loop" in listed["looped"]
    assert "unreadable" in listed["gone"] and "which does not exist" in listed["gone"]

    assert cli.main(["visualize", "linked", "--runs-dir", str(runs_dir)]) == 0
    assert f"{target}: drew" in capsys.readouterr().out  # the run is the folder linked to
    assert (target / runs.FIGURES_DIR / runs.CONV1_FIGURE).is_file()
    assert cli.main(["visualize", "all", "--runs-dir", str(runs_dir)]) == 0
    out, err = capsys.readouterr()
    assert f"{target}: drew" in out and "drew 1 of 3 runs" in err
    code, err = error_line(capsys, "train", "--resume", "linked", "--runs-dir", str(runs_dir))
    assert code == 2 and f"'{target}' is finished" in err  # the same run, the same answer
    for name, problem in (("looped", "is a symlink loop"), ("gone", "which does not exist")):
        for args in (["visualize", name], ["train", "--resume", name], ["animate", name]):
            code, err = error_line(capsys, *args, "--runs-dir", str(runs_dir))
            assert code == 2 and f"'{name}' is" in err and problem in err, (args, err)


def test_animate_output_never_replaces_what_kexp_did_not_write(trained_run, tmp_path, capsys):
    """Cause 5: `animate --output RUN/config.json` replaced a run's config with a GIF. An output
    replaces only a GIF, and never lands among a run's own files (outside its figures/)."""
    runs_dir = tmp_path / "runs"
    run_dir = copy_run(trained_run, runs_dir)
    notes = tmp_path / "notes.gif"
    notes.write_text("my notes, not a GIF")
    (tmp_path / "into-the-run").symlink_to(run_dir)
    refused = [run_dir / runs.CONFIG_FILE, run_dir / runs.STATUS_FILE,  # the run's own files
               run_dir / "evolution.gif", run_dir / runs.KERNELS_DIR / "frames.gif",
               tmp_path / "into-the-run" / "history.gif",  # through a symlink
               notes, tmp_path / "animation.png"]  # not a GIF; not a .gif name
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    for output in refused:
        code, err = error_line(capsys, "animate", str(run_dir), "--output", str(output))
        assert code == 2 and f"Invalid value for `output`: '{output}'" in err, err
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before
    assert notes.read_text() == "my notes, not a GIF" and not (tmp_path / "animation.png").exists()

    for output in (tmp_path / "evolution.gif", tmp_path / "evolution.gif",  # new, then replaced
                   run_dir / runs.FIGURES_DIR / "conv1 again.gif"):
        assert cli.main(["animate", str(run_dir), "--output", str(output)]) == 0
        assert output.read_bytes()[:6] == b"GIF89a"
    capsys.readouterr()


def test_sizes_are_checked_and_empty_runs_explained(trained_run, tmp_path, capsys):
    """Cause 7: unchecked sizes and empty runs. A model too large for this machine's memory is
    refused by name before TensorFlow builds it (nothing created); a run stopped before its
    first snapshot or epoch gets one line from every command that reads its kernels."""
    from kexp import config as config_module
    from kexp.training import trainer

    runs_dir = tmp_path / "runs"
    for args in (["--conv2-filters", "1000000000"], ["--conv2-filters", "100000000"],
                 ["--conv2-filters", "30000", "--batch-size", "2000000000"]):
        code, err = error_line(capsys, "train", *args, "--runs-dir", str(runs_dir))
        assert code == 2 and "Expected a model that fits in memory" in err, err
        assert "GiB is available" in err and args[1] in err, err
    with pytest.raises(config_module.ConfigError, match="`conv2_filters`: 1000000000"):
        trainer.train(config_module.TrainConfig(conv2_filters=10**9, runs_dir=str(runs_dir)))
    assert not runs_dir.exists()
    assert config_module.least_memory_bytes(config_module.DEFAULTS) < 2**30  # the default fits

    for kept in ((), (runs.snapshot_name(runs.INITIAL),)):  # none yet; only the initial one
        run_dir = copy_run(trained_run, runs_dir, f"stopped-with-{len(kept)}")
        for snapshot in (run_dir / runs.KERNELS_DIR).iterdir():
            if snapshot.name not in kept:
                snapshot.unlink()
        for command in ("explain", "visualize"):
            code, err = error_line(capsys, command, str(run_dir), "--runs-dir", str(runs_dir))
            assert code == 2 and "no kernels before and after training" in err, (command, err)
            assert "resume it with: " in err, err
        code, err = error_line(capsys, "animate", str(run_dir), "--runs-dir", str(runs_dir))
        assert code == 2 and "an animation needs at least two" in err, err


def test_cheap_extras_of_issue_22(trained_run, tmp_path, capsys, monkeypatch):
    """No abbreviated options; digits 0-9 only; --freeze names each layer once; compare --resume
    keeps the study's --jobs; `kexp runs` shows only checked values, in aligned columns."""
    runs_dir = tmp_path / "runs"
    for args in (["train", "--epoch", "1"], ["runs", "--runs", "x"], ["compare", "--job", "1"],
                 ["train", "--epochs", "١٢"], ["train", "--seed", "٣"],
                 ["compare", "--seeds", "١"], ["train", "--freeze", " , ,conv1,,conv1"],
                 ["train", "--freeze", "conv1,conv1"], ["train", "--freeze", "conv1,"]):
        with pytest.raises(SystemExit) as exited:
            cli.main([*args, "--runs-dir", str(runs_dir)])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and "error:" in err and args[-1] in err, (args, err)
    assert not runs_dir.exists()

    from kexp.experiments.compare import engines, plan, record
    study_dir = tmp_path / "compare-study"
    study_dir.mkdir()
    record.write_study(study_dir, plan.Study(jobs=1))
    asked = []

    def no_engine(name, jobs, *rest):
        asked.append(jobs)
        raise engines.EngineError("stop here")

    monkeypatch.setattr(engines, "make_engine", no_engine)
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    for args, jobs in ((["--resume", str(study_dir)], 1),
                       (["--resume", str(study_dir), "--jobs", "3"], 3), ([], plan.Study().jobs)):
        assert cli.main(["compare", *args, "--runs-dir", str(runs_dir)]) == 2
        assert asked[-1] == jobs and "stop here" in capsys.readouterr().err

    long_name = copy_run(trained_run, runs_dir, "x" * 70)
    short = copy_run(trained_run, runs_dir, "short")
    for name, change in (("huge", {"epochs_completed": 10**400}),
                         ("nan", {"test_accuracy": float("nan")})):
        run_dir = copy_run(trained_run, runs_dir, name)
        status = runs.read_json(run_dir / runs.STATUS_FILE)
        (run_dir / runs.STATUS_FILE).write_text(json.dumps({**status, **change}))
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    table = lines(capsys.readouterr().out)
    rows = {line.split()[0]: line for line in table}
    assert "unreadable" in rows["huge"] and "Expected a whole number from 0" in rows["huge"]
    assert "unreadable" in rows["nan"] and "`test_accuracy` is nan" in rows["nan"]
    assert len(rows["huge"]) < 400
    for row in (rows[long_name.name], rows[short.name]):  # columns where the header puts them
        assert row.index(" finished ") + 1 == table[0].index("status"), table
        assert len(row) == len(table[0]), table
