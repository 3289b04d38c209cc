"""The architecture holds: the import contract of pyproject.toml (layers, standalone modules, no
import circles — lazy imports included) covers every module, no two modules import each other
(through any chain), and heavy packages are kept off the start-up path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

HEAVY = ("docker", "fabric", "paramiko", "ray", "uvicorn", "starlette", "sklearn", "mlflow", "optuna")


def test_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _graph():  # the import graph import-linter checks (lazy and TYPE_CHECKING imports included)
    import grimp

    return grimp.build_graph("mltrain", cache_dir=None)


def _dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_contract_sees_every_module():
    """A folder without ``__init__.py`` is invisible to import-linter: none of its modules would be checked."""
    files = {_dotted(p) for p in (ROOT / "mltrain").rglob("*.py")}
    assert set(_graph().modules) == files


def test_no_import_circle_between_modules():
    """No module reaches itself through its imports (the contract checks circles between siblings only)."""
    graph = _graph()
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []
    for start in sorted(edges):  # Tarjan's strongly connected components, without recursion
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    work.append((target, iter(sorted(edges[target]))))
                    break
                if target in stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = stack[stack.index(node) :]
                    del stack[stack.index(node) :]
                    if len(component) > 1:
                        circles.append(sorted(component))
    assert not circles, circles


@pytest.mark.parametrize("command", [["-m", "mltrain", "--help"], ["-m", "mltrain.cli.main", "--help"]])
def test_help_imports_no_heavy_package(command, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *command], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
