"""The layout is the architecture: imports run one way (recipe -> cache -> runner -> tuning ->
report -> tracking -> jobs -> bench -> cli), no module imports one above it, training never loads a search
backend, and importing the package changes no process-wide setting."""

import ast
import os
from pathlib import Path

from conftest import ROOT
from helpers import run_python

PACKAGE = ROOT / "search"
# Lowest first; a module may import its own layer and those before it. errors, files, secrets and
# process are the shared floor; each subpackage's __init__ holds no imports of its own.
LAYERS = ["search.errors", "search.files", "search.secrets", "search.process", "search.recipe",
          "search.cache", "search.runner", "search.tuning", "search.report", "search.tracking",
          "search.options",
          "search.jobs",
          "search.bench", "search.cli"]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer(name: str) -> int:
    for i, prefix in reversed(list(enumerate(LAYERS))):
        if name == prefix or name.startswith(prefix + "."):
            return i
    return -1  # the package's own __init__


def imports(path: Path) -> set[str]:
    """Every search.* module imported anywhere in the file, function bodies included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in found if n == "search" or n.startswith("search.")}


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        assert name == "search" or layer(name) >= 0, f"{name} is in no layer of {LAYERS}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        for target in imports(path):
            if layer(target) > layer(name) and not name.startswith(target + "."):
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_import_cycle_among_modules():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        targets = set()
        for t in imports(path):
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                targets.add(t)
        edges[name] = targets
    seen, on_path, cycles = set(), [], []

    def visit(v):
        if v in on_path:
            cycles.append(on_path[on_path.index(v):] + [v])
            return
        if v in seen:
            return
        seen.add(v)
        on_path.append(v)
        for w in sorted(edges[v]):
            visit(w)
        on_path.pop()

    for v in sorted(edges):
        visit(v)
    assert cycles == []


def test_subpackage_inits_import_nothing_but_the_cli_face():
    for init in PACKAGE.glob("*/__init__.py"):
        names = imports(init)
        allowed = {"search.cli.main", "search.cli.main.main"} if init.parent.name == "cli" else set()
        assert names <= allowed, f"{init}: {names - allowed}"


def test_training_and_the_cache_load_no_search_backend():
    code = ("import sys; import search.recipe.train, search.recipe.evaluate, search.recipe.run_dir, "
            "search.cache.features, search.runner.trial, search.runner.worker, "
            "search.tuning.retrain; "
            "print(sorted(m for m in ('optuna', 'optuna_integration', 'keras_tuner') "
            "if m in sys.modules))")
    assert run_python(code)[-1] == "[]"


def test_importing_the_package_changes_no_process_wide_setting():
    """Loggers, warning filters and TensorFlow's environment are set by search.process.configure
    at a process's start (the CLI, a worker), never as a side effect of an import."""
    code = ("import logging, os, warnings; "
            "import search.cli.main, search.jobs, search.tuning.study, search.tuning.objective, "
            "search.runner.trial, search.report.page, search.bench.quality; "
            "import optuna; ours = [f for f in warnings.filters if 'independent' in "
            "str(f[1]) or f[2] is optuna.exceptions.ExperimentalWarning]; "
            "print(ours == [], os.environ.get('TF_CPP_MIN_LOG_LEVEL'), "
            "logging.getLogger('tensorflow').level, optuna.logging.get_verbosity())")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    assert run_python(code, env=env)[-4:] == ["True", "None", "0", "20"]  # optuna at its own INFO


def test_every_subpackage_is_in_the_installed_package_list():
    """pyproject.toml lists the packages by hand (configs/ and spaces/ are mapped in): a new
    subpackage missing there installs without its modules."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "search").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
