"""The architecture holds: the import contract of pyproject.toml (layers, standalone modules, no
import circles — lazy imports included) covers every module, no two modules import each other
(through any chain), and heavy packages are kept off the start-up path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

HEAVY = (
    "docker", "fabric", "paramiko", "ray", "uvicorn", "starlette", "sklearn", "mlflow", "optuna",
    "fsspec", "s3fs", "botocore", "aiobotocore", "boto3", "adlfs", "gcsfs",
)  # fmt: skip
MAX_LINES = 500


def test_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_module_is_over_500_lines():
    lines = {str(p.relative_to(ROOT)): len(p.read_bytes().splitlines()) for p in (ROOT / "mltrain").rglob("*.py")}
    assert {path: n for path, n in lines.items() if n > MAX_LINES} == {}


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


def _imported_by_a_plain_run(tmp_path: Path) -> set[str]:
    """The modules ``python -m mltrain`` imports (driver and prefork child) for a script without data,
    with registration turned off."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "noop.py").write_text("pass\n")
    args = ["environment=system", "~register", "job.source_dir=src", "job.script=noop.py"]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mltrain", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}


def test_a_run_without_data_imports_no_data_path(tmp_path):
    """Every run pays for what its driver and the prefork child's composing import: the data path (and the
    ssl/http stack a node's fetch uses) only for jobs that declare inputs or outputs."""
    imported = _imported_by_a_plain_run(tmp_path)
    data_path = {"mltrain.runs.inputs", "mltrain.compute.data_io", "mltrain.data", "urllib.request", "http.client"}
    data_path |= {"mltrain.remote.inputs", "mltrain.remote.spares"}  # the node-side data path
    assert not imported & data_path


def test_a_run_that_registers_nothing_imports_no_registry_code(tmp_path):
    """The model registry's store, its format checks (pickletools) and the model records are imported
    only by a run that may register a model (or whose script asks to), not with ``~register``."""
    imported = _imported_by_a_plain_run(tmp_path)
    registry = {"mltrain.registry.store", "mltrain.registry.from_run", "mltrain.registry.formats"}
    registry |= {"mltrain.workspace.models", "mltrain.serving.formats", "pickletools"}
    assert not imported & registry, sorted(imported & registry)


def test_a_run_freezes_what_its_start_up_made_and_collects_afterwards(tmp_path):
    """A single run's start-up (imports, composing, the workspace) triggers no garbage collection and
    freezes the objects it made (collections never scan them again: ~30 ms of CPU a run); the run itself
    has collections on (mltrain/config/prefork.py)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "noop.py").write_text("pass\n")
    code = """if True:
        import gc, sys
        from mltrain.config import prefork
        code = prefork.main(sys.argv[1:])
        print(code, gc.isenabled(), gc.get_freeze_count())
    """
    args = ["environment=system", "~register", "job.source_dir=src", "job.script=noop.py"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code, enabled, frozen = proc.stdout.split()[-3:]
    assert (code, enabled) == ("0", "True") and int(frozen) > 10_000


def test_store_records_share_their_methods():
    """Every run imports the stores, so their records are defined at each start-up: a record class gets
    no repr, equality or hash of its own compiled (a dataclass's default, about 1 ms a class), it uses
    Record's, which behave as a dataclass's."""
    import importlib

    from mltrain.workspace.records import Record

    for module in ("api.records", "workspace.endpoints", "workspace.environments", "workspace.metrics",
                   "workspace.models", "workspace.runs"):  # fmt: skip
        importlib.import_module(f"mltrain.{module}")
    classes, todo = [], list(Record.__subclasses__())
    while todo:
        classes.append(todo.pop())
        todo += classes[-1].__subclasses__()
    assert len(classes) >= 13
    own = [f"{c.__name__}.{m}" for c in classes for m in ("__repr__", "__eq__", "__hash__") if m in vars(c)]
    assert own == []
    from mltrain.workspace.runs import StatusChange

    a, b = StatusChange("Queued", 1.0), StatusChange("Queued", 1.0)
    assert repr(a) == "StatusChange(status='Queued', ts=1.0, detail=None)"
    assert a == b and hash(a) == hash(b) and a != StatusChange("Running", 1.0) and {a, b} == {a}
    assert a == {"status": "Queued", "ts": 1.0, "detail": None}  # still the mapping of its fields


def test_a_run_defines_only_the_tables_it_uses_and_a_new_workspace_gets_them_all(tmp_path):
    """The registry's, endpoints' and data assets' tables are defined on first use (a Table costs start-up
    time every run pays); a new workspace still gets the whole schema, and each store finds its tables."""
    code = """if True:
        import json, sys
        from sqlalchemy import inspect
        from mltrain.runs import driver
        from mltrain.workspace import Workspace, tables
        driver.prewarm([])
        defined = sorted(tables.metadata.tables)
        ws = Workspace.open(sys.argv[1])
        created = sorted(inspect(ws.db.engine).get_table_names())
        print(json.dumps([defined, created, ws.models.list(), ws.endpoints.list(), ws.data.list()]))
    """
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ws")], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    import json

    defined, created, *listed = json.loads(proc.stdout)
    lazy = {"models", "model_files", "model_aliases", "endpoints", "data_versions", "data_files", "data_aliases"}
    lazy.add("run_data")
    assert "runs" in defined and not lazy & set(defined)
    assert lazy | set(defined) <= set(created) and len(created) == 18
    assert listed == [[], [], []]


def test_root_schema_compiles_no_repr_or_equality():
    """Every run defines the root schema's dataclasses before it composes: they compile neither a repr
    nor an equality of their own (mltrain/config/schema.py)."""
    import dataclasses
    import typing

    from mltrain.config.schema import MLTrainConfig

    seen, todo = [], [MLTrainConfig]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            todo += [t for t in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(t)]
    assert len(seen) >= 10
    assert [f"{c.__name__}.{m}" for c in seen for m in ("__repr__", "__eq__") if m in vars(c)] == []


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (lazy and ``TYPE_CHECKING`` imports included), with its line."""
    import ast

    found = []
    package = ".".join(path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            found.append((node.lineno, ".".join(p for p in (base, node.module or "") if p)))
    return found


def test_node_side_code_imports_only_the_standard_library():
    """mltrain/remote/ runs on Ray nodes and SSH hosts, in whatever Python is there: the standard
    library and its own package only (the contract in pyproject.toml checks mltrain's other modules)."""
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    foreign = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted((ROOT / "mltrain" / "remote").glob("*.py"))
        for line, name in _imports(path)
        if name.split(".")[0] not in allowed and name != "mltrain.remote" and not name.startswith("mltrain.remote.")
    ]
    assert not foreign, foreign


def test_what_is_shipped_to_nodes_is_the_node_side_package(tmp_path):
    """Ray nodes get every module of mltrain/remote/ with the in-script API, SSH hosts the helper as a
    zip of them; both run on a bare Python (no site-packages, no mltrain installed)."""
    import zipfile

    from mltrain.compute.ssh.helper import agent_archive
    from mltrain.environments.shim import REMOTE_FILES, SHIM_FILES, ensure_shim

    listed = sorted(f"remote/{p.name}" for p in (ROOT / "mltrain" / "remote").glob("*.py"))
    assert sorted(REMOTE_FILES) == listed and "remote/ray_job.py" in listed and "remote/ssh_agent.py" in listed
    shim = ensure_shim(SHIM_FILES + REMOTE_FILES)
    assert sorted(p.relative_to(shim / "mltrain").as_posix() for p in shim.rglob("remote/*.py")) == listed
    modules = [f"mltrain.{rel[:-3].replace('/', '.')}" for rel in listed]
    code = f"import sys; sys.path.insert(0, {str(shim)!r}); import {', '.join(modules)}"
    bare = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 0, bare.stderr

    archive = tmp_path / "agent.pyz"
    archive.write_bytes(agent_archive())
    with zipfile.ZipFile(archive) as zf:
        assert sorted(n.removeprefix("mltrain/") for n in zf.namelist() if n.startswith("mltrain/remote/")) == listed
    probe = subprocess.run(
        [sys.executable, "-I", "-S", str(archive), str(tmp_path / "work"), "probe"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert '"workdir": ' in probe.stdout and (tmp_path / "work").is_dir()


def test_the_helpers_folder_name_follows_every_file_it_ships(monkeypatch):
    """A host keeps one folder per helper version: its name changes with any file of the helper, and it
    is known without building the zip (which a host gets only when it asks for it)."""
    from mltrain.compute.ssh import helper

    real = dict(helper._members())
    helper.agent_name.cache_clear()
    assert re.fullmatch(r"agent-[0-9a-f]{16}", helper.agent_name())
    names = {helper.agent_name()}
    for changed in ({**real, "mltrain/remote/procs.py": real["mltrain/remote/procs.py"] + b"#"}, {**real, "x.py": b""}):
        monkeypatch.setattr(helper, "_members", lambda changed=changed: changed)
        helper.agent_name.cache_clear()
        names.add(helper.agent_name())
    helper.agent_name.cache_clear()
    assert len(names) == 3
    assert helper.archive_message().split(b"\n", 1)[0] == str(len(helper.agent_archive())).encode()


def _defined_names(path: Path) -> set[str]:
    """The names a module defines at its top level (also under ``if``/``try``), as ``from it import`` sees them."""
    import ast

    names: set[str] = set()
    todo = list(ast.parse(path.read_bytes()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def test_every_name_imported_from_mltrain_exists():
    """A lazy ``from mltrain.x import name`` runs only when its function does: a name moved or renamed
    must fail here, not in the one command that reaches it."""
    import ast

    def source(module: str) -> Path | None:
        base = ROOT / Path(*module.split("."))
        return (
            base / "__init__.py"
            if base.is_dir()
            else base.with_suffix(".py")
            if base.with_suffix(".py").exists()
            else None
        )

    missing = []
    for path in sorted((ROOT / "mltrain").rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for node in ast.walk(ast.parse(path.read_bytes())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            target = source(module) if module.split(".")[0] == "mltrain" else None
            if target is None:
                continue
            defined = _defined_names(target)
            for alias in node.names:
                if alias.name != "*" and alias.name not in defined and source(f"{module}.{alias.name}") is None:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}.{alias.name}")
    assert not missing, missing


def test_only_the_stores_query_the_workspace_tables():
    """The stores of mltrain/workspace/ own the tables and return records: no other module imports the
    table definitions or SQLAlchemy, or opens a database connection of its own."""
    import ast
    import re

    stores = ROOT / "mltrain" / "workspace"
    found = []
    for path in sorted((ROOT / "mltrain").rglob("*.py")):
        if path.is_relative_to(stores):
            continue
        where = path.relative_to(ROOT)
        package = ".".join(where.parent.parts)
        for node in ast.walk(ast.parse(path.read_bytes())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(p for p in (base, node.module or "") if p)
                names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            found += [
                f"{where}:{node.lineno}: imports {n}"
                for n in names
                if n == "mltrain.workspace.tables" or n.split(".")[0] == "sqlalchemy"
            ]
        text = path.read_text()
        for match in re.finditer(r"\.db\.(read|write|engine|connect)\b", text):
            found.append(f"{where}:{text.count(chr(10), 0, match.start()) + 1}: uses {match.group(0)}")
    assert not found, found


def test_no_caller_branches_on_the_venv_builder():
    """Whether a built environment is there and how big it is are its builder's to answer
    (``present()``, ``size()``): no module outside mltrain/environments/ asks whether it is a venv."""
    import re

    builders = ROOT / "mltrain" / "environments"
    pattern = re.compile(r"""builder\W{0,3}\s*(==|!=)\s*["']venv["']""")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "mltrain").rglob("*.py"))
        if not path.is_relative_to(builders)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, found
