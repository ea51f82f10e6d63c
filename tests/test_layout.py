"""The house: engine/'s rooms import downwards (import-linter's contract in pyproject.toml, run here), no module
imports itself round a circle, no module imports another module's private name, and docs/architecture.md lists
the rooms the code has."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "engine", ROOT / "plugins" / "engine_builtins"]


def module_name(path: Path) -> str:
    base = ROOT / "plugins" if path.is_relative_to(ROOT / "plugins") else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files() -> list[Path]:
    return sorted(p for source in SOURCES for p in source.rglob("*.py"))


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every ``import`` and ``from ... import`` in a file, at any depth."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((base, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((a.name, [], node.lineno) for a in node.names)
    return found


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """import-linter's command, from the environment that runs the tests."""
    import shutil

    command = Path(sys.executable).with_name("lint-imports")
    found = str(command) if command.exists() else shutil.which("lint-imports")
    assert found, "import-linter is not installed (pip install -e '.[test]')"
    return subprocess.run([found, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


def test_the_layers_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_fails_on_a_back_import(tmp_path):
    """A planted import from the data room up into training breaks the contract (the check can fail)."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "engine", copy / "engine")
    shutil.copytree(ROOT / "plugins", copy / "plugins")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    planted = copy / "engine" / "data" / "split.py"
    planted.write_text(planted.read_text(encoding="utf-8") + "\nfrom engine.training import recipe  # planted\n",
                       encoding="utf-8")
    result = lint_imports(copy, {"PYTHONPATH": f"{copy}{os.pathsep}{copy / 'plugins'}"})
    assert result.returncode != 0, result.stdout
    assert "engine.data.split -> engine.training.recipe" in result.stdout


def graph() -> dict[str, set[str]]:
    """Module -> the engine modules it imports (the package ``engine`` itself left out: its lazy exports point
    everywhere by design)."""
    files = {module_name(p): p for p in python_files()}
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for module, names, _ in imports_of(path):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in files] or [module]
            edges[name] |= {t for t in targets if t in files and t not in (name, "engine")}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_round_a_circle():
    assert cycles(graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_name():
    files = {module_name(p) for p in python_files()}
    private = []
    for path in python_files():
        for module, names, line in imports_of(path):
            if not module.startswith(("engine", "engine_builtins")):
                continue
            for name in names:
                is_module = f"{module}.{name}" in files
                if name.startswith("_") and not name.startswith("__") and not is_module:
                    private.append(f"{path.relative_to(ROOT)}:{line}: {name} from {module}")
            if any(part.startswith("_") and not part.startswith("__") for part in module.split(".")):
                private.append(f"{path.relative_to(ROOT)}:{line}: module {module}")
    assert private == []


def rooms() -> list[str]:
    return sorted(p.name for p in (ROOT / "engine").iterdir() if (p / "__init__.py").is_file())


def test_the_architecture_document_lists_the_rooms_the_code_has():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    documented = sorted(set(re.findall(r"^\s*engine/(\w+)/\s", text, re.M)))
    assert documented == rooms()


@pytest.mark.parametrize("old", ["engine.charts", "engine.reference", "engine.cache"])
def test_a_module_path_of_0_2_still_imports_with_a_warning(old):
    code = (f"import warnings\nwarnings.simplefilter('error')\ntry:\n    import {old}\nexcept DeprecationWarning as e:\n"
            "    print(e)\nelse:\n    raise SystemExit('no warning')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert f"{old} moved to" in result.stdout and "0.4" in result.stdout
