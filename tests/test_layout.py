"""The layout is the architecture: imports run one way (recipe -> cache -> tuning -> report ->
jobs -> bench -> cli), no module imports one above it, and training never loads a search backend."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "search"
# Lowest first; a module may import its own layer and those before it. errors, files, secrets are the
# shared floor; each subpackage's __init__ holds no imports of its own.
LAYERS = ["search.errors", "search.files", "search.secrets", "search.recipe", "search.cache", "search.tuning",
          "search.report", "search.jobs", "search.bench", "search.cli"]


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
            "search.cache.features, search.tuning.worker, search.tuning.retrain; "
            "print(sorted(m for m in ('optuna', 'optuna_integration', 'keras_tuner') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
