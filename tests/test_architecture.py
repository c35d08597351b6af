"""The package's shape: no import cycles, layers import downward, a facade without side effects."""

import ast
import subprocess
import sys
from pathlib import Path

import nn_tuning

PACKAGE = Path(nn_tuning.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_import_module(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "_import_module"))
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"))


def _module_exists(candidate: str) -> bool:
    folder = PACKAGE.parent / candidate.replace(".", "/")
    return folder.with_suffix(".py").exists() or (folder / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every nn_tuning module ``path`` imports: at module level, inside functions, under
    ``if TYPE_CHECKING:`` (a cycle for the type checker and the reader all the same), and
    through ``importlib.import_module`` with a literal name or a registry of names (every
    string constant of the module that names a module beside it, or ``"module:Class"``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("nn_tuning")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("nn_tuning"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _module_exists(candidate):
                    found.add(candidate)  # ``from . import module``: the module, not the package
                else:
                    found.add(target)
    if any(_is_import_module(node) for node in ast.walk(tree)):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip().lstrip(".").partition(":")[0]  # "module:Class"
                for candidate in (text, f"{package}.{text}"):
                    if candidate.startswith("nn_tuning") and candidate != package \
                            and _module_exists(candidate):
                        found.add(candidate)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_function_level_type_checking_and_registry_imports(tmp_path):
    pkg = tmp_path / "nn_tuning"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py", "sub/a.py", "sub/b.py", "sub/c.py", "sub/d.py",
              "sub/e.py"):
        (pkg / f).write_text("")
    (pkg / "sub/a.py").write_text("def f():\n    from .b import x\n")
    (pkg / "sub/b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from .c import Y\n")
    (pkg / "sub/__init__.py").write_text(
        "from importlib import import_module\n_REGISTRY = {'x': ('d', 'D'), "
        "'y': 'nn_tuning.sub.e:E'}\n"
        "def get(n):\n    m, c = _REGISTRY[n]\n    return import_module(f'.{m}', __name__)\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, pkg
    try:
        graph = import_graph()
    finally:
        PACKAGE = saved
    assert "nn_tuning.sub.b" in graph["nn_tuning.sub.a"]  # inside a function
    assert "nn_tuning.sub.c" in graph["nn_tuning.sub.b"]  # under TYPE_CHECKING
    assert "nn_tuning.sub.d" in graph["nn_tuning.sub"]  # a registry name for import_module
    assert "nn_tuning.sub.e" in graph["nn_tuning.sub"]  # a registry "module:Class" path


def test_no_import_cycles_in_nn_tuning():
    graph = import_graph()
    assert "nn_tuning.strategies.keras_tuner_workers" in graph
    assert "nn_tuning.strategies.keras_tuner_workers" in \
        graph["nn_tuning.strategies.keras_tuner_loop"]
    assert "nn_tuning.strategies.keras_tuner_search" in graph["nn_tuning.strategies"]  # registry
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_lower_layers_do_not_import_upper_ones():
    graph = import_graph()
    upper = {"nn_tuning.tune", "nn_tuning.runner", "nn_tuning.cli", "nn_tuning.experiment",
             "nn_tuning.plan"}
    for module in ("nn_tuning.evaluators", "nn_tuning.evaluators.base", "nn_tuning.evaluation",
                   "nn_tuning.distributed", "nn_tuning.store", "nn_tuning.scaleout"):
        assert not graph[module] & upper, module
    for module, imported in graph.items():
        if module.startswith("nn_tuning.evaluators"):
            assert not any(m.startswith("nn_tuning.strategies") for m in imported), module


def _fresh_import(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True)
    return out.stdout.strip()


def test_importing_nn_tuning_imports_neither_tensorflow_nor_scikeras():
    loaded = _fresh_import(
        "import sys, nn_tuning; from nn_tuning import SearchSpace, Choice, STRATEGIES; "
        "list(STRATEGIES); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'scikeras', 'keras_tuner') "
        "if m in sys.modules))")
    assert loaded == "[]"
    # Every strategy class too: the config parser, the CLI and the report read them.
    loaded = _fresh_import(
        "import sys; from nn_tuning.strategies import STRATEGIES; "
        "[STRATEGIES[n].partial_budgets for n in STRATEGIES]; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'scikeras', 'keras_tuner') "
        "if m in sys.modules))")
    assert loaded == "[]"
    assert _fresh_import("from nn_tuning import tune, KerasRegressor; print(callable(tune))") \
        == "True"


def test_every_name_the_experiments_import_from_the_project_exists():
    """The benchmarks import inside their functions (imports before the clock): a renamed
    function broke two of them unseen (``dense_layers``, now ``layer_weights``)."""
    import importlib

    missing = []
    for path in sorted((PACKAGE.parent / "experiments").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.split(".")[0] in ("nn_tuning", "model_builders"):
                module = importlib.import_module(node.module)
                missing += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name)
                            and not _module_exists(f"{node.module}.{a.name}")]
    assert not missing, missing
