"""The public API as a script uses it: every name in `kexp.__all__` imported with
`from kexp import X` and reached as `kexp.X` again and again, in a fresh process."""

from __future__ import annotations

import pytest

import kexp

from helpers import run_python

SCRIPT = """
import importlib, sys
import kexp
names = kexp.__all__
first = {name: getattr(kexp, name) for name in names}
for name in names:  # after every submodule has been imported, a name still means the same
    exec(f"from kexp import {name} as imported")
    assert imported is first[name], name
    for _ in range(3):
        assert getattr(kexp, name) is first[name], (name, getattr(kexp, name))
modules = sorted(m for m in sys.modules if m.startswith("kexp."))
clashes = [n for n in names if f"kexp.{n}" in sys.modules]
assert not clashes, f"public names that are also submodules: {clashes}"
print(len(names), "names;", len(modules), "modules")
"""


@pytest.mark.slow
def test_every_public_name_means_the_same_thing_on_every_use():
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(kexp.__all__)} names" in result.stdout


@pytest.mark.slow
def test_kexp_train_is_callable_twice_as_the_readme_calls_it(tmp_path):
    """The README's call, twice in one script: the second `kexp.train` must still be the
    function (a lazily imported submodule of the same name used to replace it)."""
    code = (
        "import kexp\n"
        "for seed in (0, 1):\n"
        f"    config = kexp.TrainConfig(data='mnist-5k', train_samples=128, test_samples=32,\n"
        f"                              epochs=1, seed=seed, runs_dir={str(tmp_path)!r})\n"
        "    print(kexp.train(config, verbose=0))\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
