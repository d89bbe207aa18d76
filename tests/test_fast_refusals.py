"""Bad arguments are refused before TensorFlow, Keras or matplotlib is imported: a typo is answered
in a fraction of a second, exits 2 with one message naming the value, and creates nothing.

All cases run in ONE fresh Python process (a test process has TensorFlow loaded already), each
through `kexp.cli.main` as `python -m kexp` calls it; the process reports, after each case, its
exit code, its message and which heavy modules had been imported so far.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY_MODULES = ("tensorflow", "keras", "matplotlib", "ray")

# (arguments, a piece of the message). RUNS is replaced by a runs folder that must stay absent.
CASES = [
    ("train --init glorot_unifrom", "Invalid value for `init`: 'glorot_unifrom'"),
    ("train --init-conv2 he_normel", "Invalid value for `init_conv2`: 'he_normel'"),
    ("train --init random_normal:stddev=-1", "Expected a positive number"),
    ("train --init image_patches:data=/nonexistent", "'/nonexistent'"),
    ("train --epochs 0", "Invalid value for `epochs`: 0"),
    ("train --epochs abc", "argument --epochs: 'abc' is not a whole number"),
    ("train --model vgg", "argument --model: invalid choice: 'vgg'"),
    ("train --data /nonexistent/mnist.npz", "Invalid value for `data`: '/nonexistent/mnist.npz'"),
    ("train --seed -1", "Invalid value for `seed`: -1"),
    ("train --learning-rate -1", "Invalid value for `learning_rate`: -1.0"),
    ("train --freeze conv9", "Invalid value for `freeze`: 'conv9'"),
    ("train --warmup-epochs 9 --epochs 2", "Invalid value for `warmup_epochs`: 9"),
    ("train --validation-fraction 0.9", "Invalid value for `validation_fraction`: 0.9"),
    ("train --resume no-such-run", "Invalid value for `RUN`: 'no-such-run'"),
    ("compare --inits he_normel", "Invalid value for `init`: 'he_normel'"),
    ("compare --epochs 0", "Invalid value for `epochs`: 0"),
    ("compare --data /nonexistent", "Invalid value for `data`: '/nonexistent'"),
    ("compare --jobs 0", "Invalid value for `jobs`: 0"),
    ("compare --engine slurm", "Invalid value for `engine`: 'slurm'"),
    ("demo 99", "Invalid value for `name`: '99'"),
    ("animate no-such-run", "Invalid value for `RUN`: 'no-such-run'"),
    ("explain no-such-run", "Invalid value for `RUN`: 'no-such-run'"),
    ("visualize no-such-run", "Invalid value for `RUN`: 'no-such-run'"),
]

PROBE = """
import contextlib, io, json, sys
from kexp import cli
for number, argv in enumerate(json.loads(sys.argv[1])):
    message = io.StringIO()
    with contextlib.redirect_stderr(message), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exit:
            code = exit.code
    heavy = [name for name in HEAVY if name in sys.modules]
    print(json.dumps({"code": code, "message": message.getvalue(), "heavy": heavy}), flush=True)
""".replace("HEAVY", repr(HEAVY_MODULES))


@pytest.fixture(scope="module")
def refusals(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("refusals")
    argvs = [[*arguments.split(), "--runs-dir", str(root / f"runs{number}")]
             for number, (arguments, _) in enumerate(CASES)]
    probe = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    reports = [json.loads(line) for line in probe.stdout.splitlines()]
    assert len(reports) == len(CASES), probe.stderr
    return [dict(report, runs_dir=root / f"runs{number}", cwd=root)
            for number, report in enumerate(reports)]


@pytest.mark.parametrize("number", range(len(CASES)), ids=[case for case, _ in CASES])
def test_a_bad_argument_is_refused_before_any_heavy_import(refusals, number):
    report, (_, expected) = refusals[number], CASES[number]
    assert report["code"] == 2
    assert expected in report["message"]
    assert report["heavy"] == []  # cumulative: no case so far imported TensorFlow
    assert not report["runs_dir"].exists()


def test_nothing_is_written_to_the_current_folder(refusals):
    assert sorted(path.name for path in refusals[0]["cwd"].iterdir()) == []
