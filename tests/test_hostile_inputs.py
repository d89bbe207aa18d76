"""Hostile and damaged inputs, one test per cause: each tries the cases a careless or hostile user
met and more of the same kind. What every case gets: one line naming the bad value or file and
what to do, a non-zero exit (2 for bad input), and nothing lost or half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kexp import cli
from kexp.storage import atomic, run_lock, runs


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def copy_run(run_dir: Path, runs_dir: Path, name: str | None = None) -> Path:
    return Path(shutil.copytree(run_dir, runs_dir / (name or run_dir.name)))


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


def error_line(capsys, *args: str) -> tuple[int, str]:
    """Exit code and the one line on stderr of `kexp ARGS` (in this process)."""
    code = cli.main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(lines(err)) == 1, err
    return code, err


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


def paste(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `command` as a user who pasted it into a POSIX shell, without an activated venv."""
    path = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                           if Path(folder) != Path(sys.executable).parent)
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PATH": path,
                                            "TF_CPP_MIN_LOG_LEVEL": "2"})


def after(text: str, marker: str) -> str:
    return next(line.split(marker, 1)[1] for line in text.splitlines() if marker in line)


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

    # A run stopped before its first epoch: the hint resumes it (here: reaches the run and
    # finds it finished, which proves the line reached kexp with this run).
    empty = copy_run(trained_run, runs_dir, "empty")
    for snapshot in (empty / runs.KERNELS_DIR).iterdir():
        snapshot.unlink()
    code, err = error_line(capsys, "visualize", str(empty), "--runs-dir", str(runs_dir))
    pasted = paste(after(err, "resume it with: "), elsewhere)
    assert pasted.returncode == 2 and f"'{empty}' is finished" in pasted.stderr, pasted.stderr

    # No runs yet: the hint trains into the same folder (here refused at its first check).
    nothing = tmp_path / "no runs $here"
    assert cli.main(["runs", "--runs-dir", str(nothing)]) == 0
    pasted = paste(after(capsys.readouterr().out, "Train one: ") + " --epochs 0", elsewhere)
    assert pasted.returncode == 2 and "Invalid value for `epochs`: 0" in pasted.stderr

    # An interrupted study: the hint resumes that study (here one whose plan is unreadable).
    from kexp.experiments.compare import command, plan
    study = tmp_path / "compare 'x'"
    study.mkdir()
    (study / plan.STUDY_FILE).write_text("{}")

    class Interrupted:
        def run(self, *args):
            raise KeyboardInterrupt

    said = []
    with pytest.raises(KeyboardInterrupt):
        command._train(plan.Study(), study, [], Interrupted(), said.append)
    pasted = paste(after(said[-1], "continue with: "), elsewhere)
    assert pasted.returncode == 2 and f"{study / plan.STUDY_FILE}" in pasted.stderr, pasted.stderr


HOLD_LOCK = """
import sys
from kexp.storage import run_lock
with run_lock.hold(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def listed_status(capsys, runs_dir: Path, run_dir: Path) -> str:
    assert cli.main(["runs", "--runs-dir", str(runs_dir)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith(run_dir.name))
    return line.split()[1]


def test_the_lock_not_the_pid_says_whether_a_run_is_alive(trained_run, tmp_path, capsys):
    """Cause 6: a reused pid made a run look alive forever. `running` with the pid of any live
    process (this one, its parent) but no lock held reads as crashed, and --resume goes on; a
    held lock reads as running and --resume is refused naming its holder, whatever the pid."""
    runs_dir = tmp_path / "runs"
    run_dir = copy_run(trained_run, runs_dir)
    status = runs.read_json(run_dir / runs.STATUS_FILE)
    for pid, stale_lock_file in ((os.getpid(), False), (os.getppid(), True), (1, False)):
        atomic.write_json_atomic(run_dir / runs.STATUS_FILE,
                                 {**status, "status": runs.STATUS_RUNNING, "pid": pid})
        if stale_lock_file:  # left by a writer killed with SIGKILL: nobody holds it
            (run_dir / runs.LOCK_FILE).write_text(json.dumps({"pid": pid}))
        assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_CRASHED
        assert f"process {pid} is gone" in runs.read_status(run_dir)["reason"]
        code, err = error_line(capsys, "train", "--resume", str(run_dir))
        assert code == 2 and "is running" not in err and "Cannot resume" in err, err

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for pid in (2**31 - 1, os.getpid()):  # no such process, or an unrelated live one
            atomic.write_json_atomic(run_dir / runs.STATUS_FILE,
                                     {**status, "status": runs.STATUS_RUNNING, "pid": pid})
            assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_RUNNING
            code, err = error_line(capsys, "train", "--resume", str(run_dir))
            assert code == 2 and f"being written by process {holder.pid}" in err, err
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert listed_status(capsys, runs_dir, run_dir) == runs.STATUS_CRASHED


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["the folder", runs.CONFIG_FILE,
                                    f"{runs.VIEWS_DIR}/{runs.PROBE_DIGITS_FILE}"])
def test_sigterm_as_the_run_folder_appears_leaves_an_interrupted_run(tmp_path, moment):
    """Cause 8: SIGTERM right after the run folder appeared ended kexp with no message and no
    status.json. The handlers are in place before the folder exists: at any moment of its
    setup the run ends interrupted, with its status and the resume command."""
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen(
        [sys.executable, "-m", "kexp", "train", "--data", "mnist-5k", "--train-samples", "256",
         "--test-samples", "64", "--epochs", "50", "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        while process.poll() is None:  # the handshake: the moment appears on disk
            found = [path for path in runs_dir.glob("*") if path.is_dir()] \
                if runs_dir.is_dir() else []
            if found and (moment == "the folder" or (found[0] / moment).exists()):
                process.send_signal(signal.SIGTERM)
                break
            time.sleep(0.001)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "resume with: " in err, err
    status = runs.read_status(found[0])
    assert status["status"] == runs.STATUS_INTERRUPTED and status["resume"], status


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


def _default_dispositions():
    for each in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(each, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signals", [(signal.SIGTERM, signal.SIGTERM),
                                     (signal.SIGINT, signal.SIGINT)])
def test_a_second_stop_signal_to_compare_still_stops_and_records_every_training(tmp_path,
                                                                              capsys, signals):
    """Cause 4: a second SIGINT or SIGTERM to `kexp compare` orphaned its trainings and wrote no
    summary. Now the second one waits: every training is stopped and recorded interrupted, the
    study's files are written; a resume refuses a study whose driver or trainings still run."""
    runs_dir = tmp_path / "runs"
    output = tmp_path / "compare.out"
    with open(output, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "kexp", "compare", "--inits", "glorot_uniform", "he_normal",
             "--seeds", "0", "--epochs", "30", "--train-samples", "256", "--jobs", "2",
             "--runs-dir", str(runs_dir)], stdout=handle, stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, preexec_fn=_default_dispositions)
    try:
        trained = []
        while len(trained) < 2:  # the handshake: both trainings have logged an epoch
            assert process.poll() is None, output.read_text()[-3000:]
            trained = [run_dir for run_dir in runs_dir.glob(f"compare-*/runs/*")
                       if runs.read_history(run_dir)]
            time.sleep(0.05)
        study = trained[0].parent.parent
        code, err = error_line(capsys, "compare", "--resume", str(study))  # the driver lives
        assert code == 2 and f"'{study}': it is being written by process {process.pid}" in err
        for number in signals:
            process.send_signal(number)
        assert process.wait(timeout=240) == 128 + signals[0], output.read_text()[-3000:]
    finally:
        process.kill()
    rows = json.loads((study / "summary.json").read_text())["rows"]
    assert [row["status"] for row in rows] == [runs.STATUS_INTERRUPTED] * 2, rows
    for run_dir in trained:  # stopped by the study, not orphaned
        assert runs.read_json(run_dir / runs.STATUS_FILE)["status"] == runs.STATUS_INTERRUPTED
        assert not run_lock.is_held(run_dir)

    # A training that still runs (its process holds its run's lock): the resume is refused.
    status = runs.read_json(trained[0] / runs.STATUS_FILE)
    atomic.write_json_atomic(trained[0] / runs.STATUS_FILE,
                             {**status, "status": runs.STATUS_RUNNING})
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(trained[0])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = error_line(capsys, "compare", "--resume", str(study))
        assert code == 2 and "is still running in" in err and str(trained[0]) in err, err
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert runs.read_status(trained[0])["status"] == runs.STATUS_CRASHED  # resumable again


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


def test_tensorflow_start_up_lines_are_left_out(tmp_path):
    """TensorFlow's C++ start-up lines (absl's preamble, oneDNN, CUDA) are not printed; kexp's
    own lines and real errors are."""
    from kexp.training import tf_startup

    trained = subprocess.run(
        [sys.executable, "-m", "kexp", "train", "--data", "mnist-5k", "--train-samples", "128",
         "--test-samples", "32", "--epochs", "1", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert trained.returncode == 0, trained.stderr
    assert not [line for line in trained.stderr.splitlines()
                if tf_startup.STARTUP_LINE.match(line.encode())], trained.stderr
    assert "kexp: finished" in trained.stdout
    assert tf_startup.STARTUP_LINE.match(b"I0000 00:00:1796605981.829667   21822 port.cc:153] x")
