"""Each option declared once: `kexp train` is built from TrainConfig's field metadata, `compare`
takes its training options from there too, every command's --runs-dir comes from one place,
and one validator words "a whole number >= N" everywhere."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from kexp import cli, cli_options, config
from kexp.config import DEFAULTS, TrainConfig
from kexp.experiments.compare import plan, record
from kexp.storage import atomic, runs
from kexp.validation import check_whole

PACKAGE = Path(__file__).resolve().parents[1] / "kexp"
SETTINGS = [item for item in dataclasses.fields(TrainConfig) if item.metadata]


def help_entries(capsys, *command) -> dict[str, str]:
    """`kexp COMMAND --help`: each option's entry (its lines joined) by its first spelling."""
    with pytest.raises(SystemExit) as exited:
        cli.main([*command, "--help"])
    assert exited.value.code == 0
    entries: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line
        elif line.startswith("    ") and entries:
            entries[flag] += line
    return {flag: " ".join(entry.split()) for flag, entry in entries.items()}


def refusal(capsys, argv) -> str:
    """The error line `kexp ARGV` answers with (exit 2, from argparse or from the command)."""
    try:
        code = cli.main(argv)
    except SystemExit as exited:
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    return err.strip().splitlines()[-1].split("error: ", 1)[1]


def test_every_setting_is_a_train_option_with_its_help_and_default(capsys):
    entries = help_entries(capsys, "train")
    assert len(SETTINGS) == len(dataclasses.fields(TrainConfig))  # none left undescribed
    for item in SETTINGS:
        entry = entries[config.option_flag(item)]
        assert " ".join(item.metadata["help"].split()) in entry, entry
        if "(default:" not in item.metadata["help"]:  # else it says the default in words
            assert entry.endswith(f"(default: {item.default})"), entry
        assert entry.count("(default:") == 1, entry
    assert set(entries) == {"-h"} | {config.option_flag(item) for item in SETTINGS} | {"--resume"}


def test_train_options_parse_into_the_config_they_describe():
    args = cli.build_parser().parse_args(
        ["train", "--epochs", "3", "--freeze", "conv1", "--no-augment", "--snapshot-batches",
         "4", "--learning-rate", "0.01", "--model", "convnet", "--tensorboard"])
    values = {item.name: getattr(args, item.name) for item in SETTINGS}
    assert TrainConfig(**values).validate() == TrainConfig(
        epochs=3, freeze=("conv1",), augment=False, snapshot_every_batches=4,
        learning_rate=0.01, model="convnet", tensorboard=True)


# (option, a value both commands take, values both refuse with the same words)
SHARED = [("--epochs", "4", ["0", "abc", "-3", str(2**31), "١٢"]),
          ("--train-samples", "64", ["0", "1.5"]),
          ("--snapshot-batches", "3", ["-1", str(2**31)]),
          ("--model", "convnet", ["vgg"]),
          ("--data", "mnist-5k", [""])]


def test_compare_takes_the_training_options_of_train(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    entries = {"train": help_entries(capsys, "train"), "compare": help_entries(capsys, "compare")}
    for name in plan.TRAINING_SETTINGS:
        flag = config.option_flag(next(item for item in SETTINGS if item.name == name))
        train_help, compare_help = entries["train"][flag], entries["compare"][flag]
        assert train_help.split("(default:")[0] == compare_help.split("(default:")[0]
        if getattr(plan.Study(), name) is not None:  # else said in words, as for train
            assert compare_help.endswith(f"(default: {getattr(plan.Study(), name)})")
    assert {flag for flag, _, _ in SHARED} <= set(entries["compare"])

    parser, runs_dir = cli.build_parser(), str(tmp_path / "runs")
    names = {config.option_flag(item): item.name for item in SETTINGS}
    for flag, good, bad_values in SHARED:
        read = [cli_options.training_values(parser.parse_args([command, flag, good]))[names[flag]]
                for command in ("train", "compare")]
        assert read[0] == read[1] != getattr(DEFAULTS, names[flag]), (flag, read)
        for bad in bad_values:
            said = refusal(capsys, ["train", flag, bad, "--runs-dir", runs_dir])
            assert said == refusal(capsys, ["compare", flag, bad, "--inits", "zeros", "--seeds",
                                            "0", "--runs-dir", runs_dir]), (flag, bad)
            assert bad in said, said
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["train", "visualize", "runs", "compare", "animate", "demo",
                                     "explain"])
def test_every_command_takes_runs_dir_from_one_place(capsys, command):
    entry = help_entries(capsys, command)["--runs-dir"]
    assert entry.startswith("--runs-dir RUNS_DIR") and entry.endswith(
        f"(default: {DEFAULTS.runs_dir})"), entry


def test_no_module_declares_a_training_option_by_hand():
    flags = "|".join(re.escape(config.option_flag(item)) for item in SETTINGS)
    by_hand = re.compile(rf"add_argument\(\s*[\"']({flags})[\"']")
    offenders = [f"{path.relative_to(PACKAGE)}: {found.group(1)}"
                 for path in PACKAGE.rglob("*.py")
                 for found in by_hand.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == [], offenders


def test_one_validator_words_every_whole_number_check():
    """check_whole refuses bools, fractions, and numbers out of bounds, naming the value and
    what would do; no module types the check out again."""
    assert check_whole("epochs", 3, 1) == 3 and check_whole("seed", None, 0, none="None") is None
    for value in (0, True, 1.0, "2", None):
        expected = rf"Invalid value for `epochs`: {re.escape(repr(value))}"
        with pytest.raises(ValueError, match=expected + r"\. Expected a whole number >= 1\.$"):
            check_whole("epochs", value, 1)
    with pytest.raises(config.ConfigError, match=r"`seed`: 11\. Expected a whole number >= 0 "
                                                 r"\(0: none\) \(at most 10\), or nothing\.$"):
        check_whole("seed", 11, 0, 10, none="nothing", note=" (0: none)", error=config.ConfigError)
    typed_out = re.compile(r"isinstance\([^()]*bool\)\s*or\s*not\s*isinstance\([^()]*int\)")
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if typed_out.search(path.read_text(encoding="utf-8"))]
    assert offenders == [], offenders


def test_a_study_refuses_a_setting_it_does_not_have(tmp_path, capsys, monkeypatch):
    with pytest.raises(config.ConfigError, match=r"Unknown settings: epoch\. Expected only: "
                                                 r"data, epochs, initializers, jobs, model"):
        plan.Study.from_dict({"epoch": 3})
    assert plan.Study.from_dict({"epochs": 3}) == plan.Study(epochs=3)

    study_dir = tmp_path / "compare-study"
    study_dir.mkdir()
    record.write_study(study_dir, plan.Study(jobs=1, epochs=1))
    path = study_dir / plan.STUDY_FILE
    written = json.loads(path.read_text())
    path.write_text(json.dumps({**written, "study": {**written["study"], "seed": 4}}))
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    said = refusal(capsys, ["compare", "--resume", str(study_dir), "--runs-dir",
                            str(tmp_path / "runs")])
    assert f"Cannot read '{path}'" in said and "Unknown settings: seed. Expected only: " in said
    assert "seeds, snapshot_every_batches" in said, said


def test_read_config_hands_back_the_config_that_trained(tmp_path):
    run_dir = runs.create_run_dir(tmp_path, "x")
    trained = TrainConfig(epochs=2, freeze=("conv2",), init="he_normal", runs_dir=str(tmp_path))
    atomic.write_json_atomic(run_dir / runs.CONFIG_FILE, {
        "config": trained.to_dict(), "data": {"source": "mnist-5k", "sha256": "00"}})
    assert runs.read_config(run_dir) == trained
    assert runs.read_config(run_dir).init_specs[0].name == "he_normal"


def test_make_train_passes_every_setting_it_is_given(repo_root):
    """`make train VARIABLE=value` for each option (in capitals: SNAPSHOT_BATCHES for
    --snapshot-batches), flags as 1 or 0; the Makefile takes the names from kexp.cli_options,
    so a new field is a variable too."""
    import subprocess
    import sys

    given = {cli_options.make_variable(item): f"v_{item.name}" for item in SETTINGS
             if item.metadata["kind"] != config.FLAG}
    assert given["SNAPSHOT_BATCHES"] == "v_snapshot_every_batches"  # the option's name
    given.update(AUGMENT="0", TENSORBOARD="1", DETERMINISTIC="yes", FIGURES="off")
    # --no-print-directory: under `make test` this make is a sub-make, which would otherwise
    # end its output with "make[1]: Leaving directory ..."
    made = subprocess.run(["make", "-n", "--no-print-directory", "train", f"PY={sys.executable}",
                           *(f"{key}={value}" for key, value in given.items())],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    command = made.stdout.strip().splitlines()[-1].split(" -m kexp train ")[1].split()
    expected = [word for item in SETTINGS for word in (
        [config.option_flag(item), f"v_{item.name}"] if item.metadata["kind"] != config.FLAG
        else [{"augment": "--no-augment", "figures": "--no-figures"}.get(
            item.name, config.option_flag(item))])]
    assert command == expected, command
