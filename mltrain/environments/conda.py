"""Azure-style conda environment files, installed through PyPI where the names map.

conda and micromamba are not required: ``python=X.Y`` sets the Python version, conda packages
become PyPI requirements (``numpy=1.26`` → ``numpy==1.26.*``), the ``pip:`` section is taken as is.
A package that exists only on conda (system libraries, compilers, CUDA) is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mltrain.errors import EnvironmentSpecError

# conda names whose PyPI distribution has another name
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-lightgbm": "lightgbm",
    "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib",
    "pyqt": "PyQt5",
    "tables": "tables",
    "python-graphviz": "graphviz",
}
# conda-only packages: system libraries and toolchains with no PyPI equivalent
CONDA_ONLY = {
    "cudatoolkit",
    "cudnn",
    "nccl",
    "mkl",
    "mkl-service",
    "intel-openmp",
    "libgcc-ng",
    "libstdcxx-ng",
    "libgfortran-ng",
    "_libgcc_mutex",
    "_openmp_mutex",
    "openssl",
    "ca-certificates",
    "libffi",
    "zlib",
    "xz",
    "bzip2",
    "readline",
    "sqlite",
    "tk",
    "ncurses",
    "openblas",
    "libblas",
    "liblapack",
    "blas",
    "r-base",
    "gcc",
    "gxx",
    "gfortran",
    "make",
    "cmake",
    "nodejs",
    "git",
    "curl",
    "ld_impl_linux-64",
}
_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class CondaSpec:
    name: str | None
    python: str | None  # X.Y
    requirements: tuple[str, ...]


def _conda_to_pip(dep: str, path: Path) -> str | None:
    """The PyPI requirement for one conda dependency (None for ``pip`` itself)."""
    m = _SPEC.match(dep.split("::", 1)[-1].strip())
    if not m:
        raise EnvironmentSpecError(f"{path}: cannot read the conda dependency {dep!r}")
    name, rest = m.group("name").lower(), m.group("rest").replace(" ", "")
    if name == "pip":
        return None
    if name in CONDA_ONLY or name.startswith("r-"):
        raise EnvironmentSpecError(
            f"{path}: {name!r} is a conda-only package with no PyPI equivalent",
            hint="remove it from the conda file, or use a Docker environment whose base image has it",
        )
    pypi = CONDA_TO_PYPI.get(name, name)
    if not rest:
        return pypi
    if rest.startswith("=="):
        return f"{pypi}=={rest[2:].split('=')[0]}"  # exact version; a conda build string is dropped
    if rest[0] in "<>!~":
        return pypi + rest
    version = rest.lstrip("=").split("=")[0]  # conda "name=1.26" / "name=1.26=build" / "name 1.26"
    if not version:
        return pypi
    fuzzy = "*" not in version and version.count(".") < 2
    return f"{pypi}=={version}.*" if fuzzy else f"{pypi}=={version}"


def read_conda_file(path: str | Path) -> CondaSpec:
    """Parse a conda environment YAML into a Python version and PyPI requirements."""
    import yaml

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise EnvironmentSpecError(f"{p} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies", []), list):
        raise EnvironmentSpecError(f"{p} is not a conda environment file", hint="it needs a `dependencies:` list")
    python = None
    reqs: list[str] = []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, dict):
            reqs += [str(x).strip() for x in dep.get("pip") or [] if str(x).strip()]
            continue
        text = str(dep).strip()
        if re.match(r"^python(\s|=|>|<|$)", text):
            found = re.search(r"(\d+\.\d+)", text)
            python = found.group(1) if found else None
            continue
        req = _conda_to_pip(text, p)
        if req:
            reqs.append(req)
    return CondaSpec(doc.get("name"), python, tuple(reqs))
