"""What a script imports, read statically (``ast``; nothing of the project is executed): the modules
a warm fork server imports ahead of a sweep's children, on every target that has one.

The script's own ``import`` lines are followed into the project's local modules (``from task import
train`` reads ``task.py``, a package's ``__init__.py`` and submodules, relative imports included), so
third-party modules imported only through the project's own code are found too. Local modules
themselves are never imported ahead: they are the job's code.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_FILES = 500  # local modules followed at most (a large project: its first ones)
MAX_BYTES = 2 << 20  # a local file larger than this is not read


def _local_file(roots: list[Path], name: str) -> Path | None:
    """The file of local module ``name`` (``a.b`` → ``a/b.py`` or ``a/b/__init__.py``) under ``roots``."""
    rel = Path(*name.split("."))
    for root in roots:
        for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _module_name(roots: list[Path], path: Path) -> tuple[str, bool]:
    """The dotted name of local file ``path`` and whether it is a package (``__init__.py``)."""
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = list(rel.with_suffix("").parts)
        package = parts[-1] == "__init__"
        return ".".join(parts[:-1] if package else parts), package
    return path.stem, False


def _imports(tree: ast.AST, module: str, package: bool) -> list[str]:
    """Absolute names ``tree`` imports (``from X import Y`` gives ``X`` and ``X.Y``), relative imports
    resolved against ``module``."""
    names: list[str] = []
    base = module.split(".") if package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = base[: len(base) - (node.level - 1)] if node.level - 1 <= len(base) else []
                if not up and not node.module:
                    continue
                parent = ".".join([*up, *([node.module] if node.module else [])])
            elif node.module:
                parent = node.module
            else:
                continue
            names.append(parent)
            names += [f"{parent}.{a.name}" for a in node.names if a.name != "*"]
    return names


def script_imports(source_dir: Path, script: str) -> list[str]:
    """Third-party modules ``script`` imports, directly or through the project's local modules (in its
    own folder or ``source_dir``), in the order found: what a fork server may import ahead of the job."""
    script_path = source_dir / script
    roots = list(dict.fromkeys([script_path.parent, source_dir]))
    local_tops = set()
    for root in roots:
        try:
            local_tops |= {p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()}
        except OSError:
            pass
    out: list[str] = []
    todo: list[tuple[Path, str, bool]] = [(script_path, "__main__", False)]
    seen: set[Path] = set()
    while todo and len(seen) < MAX_FILES:
        path, module, package = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            if path.stat().st_size > MAX_BYTES:
                continue
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for name in _imports(tree, module, package):
            top = name.split(".")[0]
            if top == "__future__":
                continue
            if top not in local_tops:
                if name not in out:
                    out.append(name)
                continue
            found = _local_file(roots, name)
            if found is not None and found not in seen:
                todo.append((found, *_module_name(roots, found)))
    return out
