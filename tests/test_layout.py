"""The package's shape: no import cycles (imports inside functions count), no module importing
another module's private names, no module over MAX_LINES lines, and no TensorFlow in a module
that does not train. The tests' shape: none takes a private kexp name, no file is over
MAX_TEST_LINES lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import run_python

PACKAGE = Path(__file__).resolve().parents[1] / "kexp"
MAX_LINES = 400
# The modules that build or run Keras models: the only ones allowed to import TensorFlow.
TRAINING_MODULES = {"kexp.digits.augment", "kexp.digits.inputs", "kexp.training.callbacks",
                    "kexp.training.checkpoint", "kexp.training.forces", "kexp.training.trainer",
                    "kexp.network.conv_layers", "kexp.network.keras_initializers",
                    "kexp.network.layers", "kexp.network.models", "kexp.probes.keras_views",
                    "kexp.network.saving", "kexp.training.optimal_inputs_thread",
                    "kexp.experiments.compare.child"}  # a compare child process trains


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import in module `name`, at any depth
    (top level, functions, classes), with relative imports resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, []) if submodule in MODULES else (base, [alias.name]))
    return found


def import_graph() -> dict[str, set[str]]:
    """kexp module -> the kexp modules it imports."""
    return {name: {target for target, _ in imports_of(name)
                   if target in MODULES and target != name}
            for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_kexp_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_another_modules_private_names():
    offences = []
    for name in MODULES:
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        bound = {}  # local name -> kexp module it stands for
        for target, names in imports_of(name):
            offences += [f"{name}: from {target} import {n}" for n in names
                         if target.startswith("kexp") and n.startswith("_")]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                bound.update({alias.asname: alias.name for alias in node.names
                              if alias.asname and alias.name in MODULES})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                offences.append(f"{name}: {bound[node.value.id]}.{node.attr}")
    assert not offences, offences


def test_no_module_is_too_long():
    long = {name: lines for name, path in MODULES.items()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.slow
def test_modules_that_do_not_train_do_not_import_tensorflow():
    light = sorted(set(MODULES) - TRAINING_MODULES - {"kexp.__main__"})
    code = (f"import importlib, sys\nfor name in {light!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = run_python(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", light


def test_every_kexp_import_names_something_that_exists():
    """Imports inside functions run only when called: a stale one (a moved or deleted module or
    name) would otherwise surface as a user's crash."""
    import importlib

    stale = []
    for name in MODULES:
        for target, names in imports_of(name):
            if target != "kexp" and not target.startswith("kexp."):
                continue
            if target not in MODULES:
                stale.append(f"{name}: {target}")
                continue
            module = importlib.import_module(target)
            stale += [f"{name}: {target}.{n}" for n in names if not hasattr(module, n)]
    assert not stale, stale


# The core's floors, top to bottom: a module imports only from its own floor or those below it,
# so the arrows point one way (cli -> experiments -> training -> views -> probes -> network ->
# filters and digits -> storage -> the foundation). kexp.network.initializers is the theory of
# each initializer, numpy alone: it sits on the foundation because config validates names with it.
FLOORS = [
    ("kexp", "kexp.__main__", "kexp.cli", "kexp.run_record"),
    ("kexp.experiments",),
    ("kexp.training",),
    ("kexp.views",),
    ("kexp.probes",),
    ("kexp.network",),
    ("kexp.filters", "kexp.digits"),
    ("kexp.storage",),
    ("kexp.config", "kexp.cli_options", "kexp.shell_commands", "kexp.errors",
     "kexp.network.initializers", "kexp.validation"),
]


def floor_of(name: str) -> int:
    """The floor of module `name`: that of its longest listed prefix."""
    matches = [(len(prefix), floor) for floor, prefixes in enumerate(FLOORS)
               for prefix in prefixes if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"{name} is on no floor: add its folder to FLOORS"
    return max(matches)[1]


def test_the_floor_of_a_module_is_that_of_its_folder():
    assert floor_of("kexp.network.models") == floor_of("kexp.network") == 5
    assert floor_of("kexp.network.initializers") == len(FLOORS) - 1
    assert floor_of("kexp.experiments.compare.page") == 1


def test_every_import_points_down_the_floors():
    upward = [f"{name} -> {target}" for name, targets in import_graph().items()
              for target in targets if floor_of(target) < floor_of(name)]
    assert not upward, upward


def test_nothing_in_the_core_imports_the_experiments():
    """The experiments are built from the core; only the command line reaches them."""
    allowed = {"kexp.cli", "kexp.__main__"}
    offenders = [f"{name} -> {target}" for name, targets in import_graph().items()
                 for target in targets if target.startswith("kexp.experiments")
                 and not name.startswith("kexp.experiments") and name not in allowed]
    assert not offenders, offenders


def test_drawing_primitives_are_reached_through_plots_from_outside_views():
    """One way into the drawing functions: kexp.views.plots."""
    inner = {"kexp.views.drawing", "kexp.views.figure_labels"}
    offenders = [f"{name} -> {target}" for name, targets in import_graph().items()
                 for target in targets & inner if not name.startswith("kexp.views.")]
    assert not offenders, offenders


TESTS = Path(__file__).resolve().parent
MAX_TEST_LINES = 500


def dotted(node: ast.AST) -> str | None:
    """"a.b.c" for the expression a.b.c, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (owner := dotted(node.value)):
        return f"{owner}.{node.attr}"
    return None


def private_kexp_names(source: str) -> list[str]:
    """Each private kexp name that `source` takes: `from kexp... import _name`, or `module._name`
    and get/set/delattr(module, "_name") on a kexp module it imported (or "kexp.module._name")."""
    tree = ast.parse(source)
    local = {}  # a local name -> the kexp module or package it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kexp"):
            found += [f"from {node.module} import {alias.name}" for alias in node.names
                      if alias.name.startswith("_")]
            local.update({alias.asname or alias.name: f"{node.module}.{alias.name}"
                          for alias in node.names})
        elif isinstance(node, ast.Import):
            local.update({alias.asname or alias.name.split(".")[0]:
                          alias.name if alias.asname else alias.name.split(".")[0]
                          for alias in node.names if alias.name.startswith("kexp")})

    def module_of(name: str | None) -> str | None:
        first, _, rest = (name or "").partition(".")
        module = ".".join(filter(None, [local.get(first), rest])) if first in local else None
        return module if module in MODULES else None

    def private(attribute: str) -> bool:
        return attribute.startswith("_") and not attribute.endswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr) and \
                (module := module_of(dotted(node.value))):
            found.append(f"{module}.{node.attr}")
        elif isinstance(node, ast.Call) and (dotted(node.func) or "").rpartition(".")[2] in \
                ("getattr", "setattr", "delattr"):
            texts = [arg.value for arg in node.args[:2] if isinstance(arg, ast.Constant)
                     and isinstance(arg.value, str)]
            named = [f"{module}.{text}" for text in texts
                     if (module := module_of(dotted(node.args[0])))]  # (module, "_name")
            found += [name for name in named + texts  # or ("kexp.module._name")
                      if name.startswith("kexp.") and private(name.rpartition(".")[2])]
    return found


def test_the_private_name_finder_finds_each_way_of_taking_one():
    source = ("from kexp.training.trainer import _trim_history\n"
              "from kexp.storage import atomic\nimport kexp.training.trainer\n"
              "import kexp.views.run_page as page\n"
              "atomic._write_atomic(1, 2)\nkexp.training.trainer._write_page(3)\n"
              "monkeypatch.setattr(page, '_card', None)\n"
              "monkeypatch.setattr('kexp.storage.atomic._write_atomic', None)\n"
              "atomic.write_json_atomic(4, 5)\nrun._repr_html_()\natomic.__name__\n")
    assert sorted(private_kexp_names(source)) == sorted([
        "from kexp.training.trainer import _trim_history", "kexp.storage.atomic._write_atomic",
        "kexp.training.trainer._write_page", "kexp.views.run_page._card",
        "kexp.storage.atomic._write_atomic"])


def test_no_test_imports_or_uses_a_private_kexp_name():
    """Tests go through what a module offers: a private name may change with its module."""
    offences = [f"{path.name}: {name}" for path in sorted(TESTS.glob("*.py"))
                for name in private_kexp_names(path.read_text(encoding="utf-8"))]
    assert not offences, offences


def test_no_test_file_is_too_long():
    long = {path.name: lines for path in sorted(TESTS.glob("*.py"))
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_TEST_LINES}
    assert not long, f"test files over {MAX_TEST_LINES} lines (split them by subject): {long}"
