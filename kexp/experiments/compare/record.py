"""What a study folder records about its plan and its trainings, for `kexp compare --resume`.

A study whose driver was interrupted (Ctrl-C, a lost terminal, a killed job) can be continued
instead of started again. study.json holds the plan, the Study's settings, written when the
folder is created. What became of each training is read back from the folder itself: a
training is done when its run folder says `finished`; a run folder that stopped part-way (or
the last checkpoint a Ray worker shipped) is continued from its last checkpoint, and a training
without either starts again.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from kexp.errors import KexpError
from kexp.experiments.compare import plan, shipping
from kexp.storage import atomic, files, runs


def write_study(compare_dir: Path, study: plan.Study) -> Path:
    """study.json: every setting of `study` but where its folder was made."""
    settings = {key: value for key, value in dataclasses.asdict(study).items()
                if key != "runs_dir"}
    return atomic.write_json_atomic(Path(compare_dir) / plan.STUDY_FILE,
                                  {"created": runs.now_iso(), "study": settings})


def read_study(compare_dir: Path) -> plan.Study:
    """The Study recorded in `compare_dir`, validated as a new one would be."""
    path = Path(compare_dir) / plan.STUDY_FILE
    if not path.is_file():
        raise runs.RunError(f"Invalid value for `resume`: '{compare_dir}' has no "
                            f"{plan.STUDY_FILE}. Expected a study folder (runs/compare-"
                            "<timestamp>) made by `kexp compare`.")
    settings = files.check_fields(runs.read_json(path), {"study": files.OBJECT}, path,
                                  runs.RunError, required=("study",))["study"]
    try:
        return plan.Study.from_dict({**settings, "runs_dir": str(Path(compare_dir).parent)}
                                    ).validate()
    except (KexpError, TypeError, ValueError, AttributeError) as error:  # a field's wrong type
        raise runs.RunError(f"Cannot read '{path}': its settings are invalid: {error}. Expected "
                            f"the {plan.STUDY_FILE} that `kexp compare` wrote.") from None


def _summary_rows(compare_dir: Path) -> dict[tuple[str, int], dict]:
    path = Path(compare_dir) / plan.SUMMARY_JSON
    rows = runs.read_json(path)["rows"] if path.is_file() else []
    return {(row["initializer"], row["seed"]): row for row in rows}


def _run_folder(compare_dir: Path, training: plan.Training, row: dict | None) -> Path | None:
    """The training's run folder in the study, found from its summary row or its result file
    (by name: the study folder may have moved since)."""
    recorded = (row or {}).get("run")
    result = training.file(compare_dir, plan.RESULT_SUFFIX)
    if not recorded and result.is_file():
        recorded = runs.read_json(result).get("run_dir")
    if not recorded:
        return None
    run_dir = Path(compare_dir) / plan.RUNS_SUBDIR / Path(recorded).name
    return run_dir if runs.is_run_dir(run_dir) else None


def _shipped_checkpoint(compare_dir: Path, training: plan.Training) -> Path | None:
    """The run folder in the checkpoint that a Ray worker last shipped, landed in runs/ so that
    either engine continues it; None when there is none."""
    checkpoint = training.file(compare_dir, plan.CHECKPOINT_SUFFIX)
    if not checkpoint.is_file():
        return None
    run_dir = shipping.land_run(checkpoint.read_bytes(), Path(compare_dir) / plan.RUNS_SUBDIR)
    runs.write_status(run_dir, runs.STATUS_INTERRUPTED,
                      reason="its study stopped before it finished")
    return run_dir


def recorded_trainings(compare_dir: Path, study: plan.Study) -> list[plan.Training]:
    """Every planned training, with the finished ones marked `finished` (they are not run
    again) and the others carrying the run folder to continue, if they got one."""
    rows = _summary_rows(compare_dir)
    trainings = plan.trainings(study)
    for training in trainings:
        row = rows.get((training.init, training.seed))
        training.run_dir = _run_folder(compare_dir, training, row) or _shipped_checkpoint(
            compare_dir, training)
        log_path = training.file(compare_dir, plan.LOG_SUFFIX)
        training.log_path = log_path if log_path.exists() else None
        status = runs.read_status(training.run_dir) if training.run_dir else {}
        if status.get("status") == runs.STATUS_RUNNING and status.get("host") == \
                socket.gethostname():  # its process holds the run's lock
            raise runs.RunError(
                f"Cannot resume '{compare_dir}': its training {training.label} is still "
                f"running in {training.run_dir} (process {status.get('pid')} on "
                f"{status.get('host')}). Expected a study none of whose trainings runs: wait "
                "for it to end, or stop it, then resume.")
        if status.get("status") == runs.STATUS_FINISHED:
            training.status = runs.STATUS_FINISHED
            training.wall_seconds = (row or {}).get("process_seconds") or 0.0
    return trainings
