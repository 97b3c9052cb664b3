"""The shape of the code (DESIGN.md): no import circle among src/ modules, no module importing a
private name from another, command modules importing only cli._common, and the light modules
loading no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str) -> list[tuple[str, list[str], bool]]:
    """(imported module, names, at module level) for every bpttlab import in ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("bpttlab"):
                found.append((node.module, [a.name for a in node.names], id(node) in top))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bpttlab"):
                    found.append((alias.name, [], id(node) in top))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{name}: relative import; bpttlab imports absolutely")
    return found


def _target(module: str, names: list[str]) -> list[str]:
    """The bpttlab modules an import statement loads (``from bpttlab import x`` may be one)."""
    out = [module] if module in MODULES else []
    out += [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return out


def test_no_import_circle_at_module_level():
    graph = {m: {t for mod, names, top in _imports(m) if top for t in _target(mod, names)}
             for m in MODULES}  # fmt: skip
    for m in graph:  # a package imports its own submodules; a submodule its package: no cycle
        graph[m] = {t for t in graph[m] if t != m and not m.startswith(t + ".")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(m: str) -> None:
        if m in done:
            return
        assert m not in visiting, "import circle: " + " -> ".join([*visiting, m])
        visiting.append(m)
        for t in graph[m]:
            visit(t)
        visiting.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_no_module_imports_a_private_name_from_another():
    private = [(m, mod, n) for m in MODULES for mod, names, _ in _imports(m) for n in names
               if n.startswith("_") and n != "__version__"]  # fmt: skip
    assert private == []


def test_command_modules_import_only_the_common_module_of_the_cli():
    for m in MODULES:
        if m.startswith("bpttlab.cli.") and m != "bpttlab.cli._common":
            cli = [mod for mod, names, _ in _imports(m) if mod.startswith("bpttlab.cli")]
            assert set(cli) <= {"bpttlab.cli._common"}, (m, cli)


LIGHT = ["bpttlab", "bpttlab.store", "bpttlab.stats", "bpttlab.theory", "bpttlab.dynamics",
         "bpttlab.specs", "bpttlab.cli"]  # fmt: skip


@pytest.mark.parametrize("module", LIGHT)
def test_light_modules_load_no_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_files_keep_to_one_concept():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
