"""Helpers of the environment tests: a probe job that reports what its environment has, user
environment configs in the project's ./conf, a package whose build fails, run records."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

PROBE = """\
import importlib, sys
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    print(f"probe: {name}=={getattr(module, '__version__', '?')}")
print("probe: python %d.%d" % sys.version_info[:2])
print("probe: prefix", sys.prefix)
"""

# a package whose metadata resolves but whose build always fails (like a C extension without a compiler)
BAD_PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "badpkg"
version = "0.1"
"""
BAD_BACKEND = """\
import os, sys

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, "badpkg-0.1.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: badpkg\\nVersion: 0.1\\n")
    return "badpkg-0.1.dist-info"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    print("compiling the extension of badpkg... error: no compiler found", file=sys.stderr)
    raise SystemExit(1)
"""

# environment variables that make any package index access fail
OFFLINE = {
    "UV_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_DEFAULT_INDEX": "http://127.0.0.1:9/simple",
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "UV_OFFLINE": "1",
    "UV_NO_CACHE": "1",
}


def current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def write_conf(project: Path, group: str, name: str, node: dict[str, Any]) -> Path:
    """Write ``conf/GROUP/NAME.yaml`` in the project (the user's own config options)."""
    path = project / "conf" / group / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(node, sort_keys=False))
    return path


def write_bad_package(folder: Path) -> Path:
    pkg = folder / "badpkg"
    pkg.mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(BAD_PYPROJECT)
    (pkg / "backend.py").write_text(BAD_BACKEND)
    return pkg


def probed(output: str) -> dict[str, str]:
    """What the probe job printed: {module: version, "python": X.Y, "prefix": path}."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("probe: "):
            body = line[len("probe: ") :]
            if "==" in body:
                name, version = body.split("==", 1)
                found[name] = version
            else:
                key, value = body.split(" ", 1)
                found[key] = value
    return found


def runs(cli_json: Any) -> list[dict[str, Any]]:
    """The runs of the test's project (the cwd); none when no workspace was made there."""
    if not Path(".mltrain").exists():
        return []
    result = cli_json("runs", "list", "-n", "0")
    assert isinstance(result, list)
    return result


def build_log(run: dict[str, Any]) -> str:
    """The run's logs/build_log.txt ("" when nothing was built)."""
    path = Path(run["run_dir"]) / "logs" / "build_log.txt"
    return path.read_text() if path.exists() else ""


def venv_folders(cache: Path) -> list[str]:
    """What the venv cache holds besides lock files (built venvs, scratch and trash folders)."""
    root = cache / "venvs"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


def open_workspace(project: Path) -> Any:
    from mltrain.workspace import Workspace

    return Workspace.open(str(project / ".mltrain"))


def env_json(proc: Any) -> dict[str, Any]:
    assert proc.returncode == 0, proc.output
    data = json.loads(proc.stdout)
    assert isinstance(data, dict)
    return data


def without(keys: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in keys}
