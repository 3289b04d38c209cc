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
    "py-xgboost-cpu": "xgboost",
    "py-lightgbm": "lightgbm",
    "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib",
    "numpy-base": "numpy",
    "pyqt": "PyQt5",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "pyarrow-core": "pyarrow",
    "typing_extensions": "typing-extensions",
    "ruamel_yaml": "ruamel.yaml",
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
    "nodejs",
    "git",
    "curl",
    "ld_impl_linux-64",
    "libgcc",
    "libstdcxx",
    "libgomp",
    "libzlib",
    "libsqlite",
    "libuuid",
    "libnsl",
    "libedit",
    "libxcrypt",
    "libopenblas",
    "libcblas",
    "libcurl",
    "libxml2",
    "libiconv",
    "libarrow",
    "arrow-cpp",
    "hdf5",
    "icu",
    "expat",
    "lz4-c",
    "zstd",
    "mkl-include",
    "mkl-devel",
    "nomkl",
    "cuda-toolkit",
    "cuda-nvcc",
    "cuda-version",
    "cuda-runtime",
    "pytorch-cuda",
    "cpuonly",
    "vc",
    "vs2015_runtime",
    "ucrt",
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
    name, rest = m.group("name").lower(), m.group("rest").strip()
    if " " in rest and not any(op in rest for op in "<>!,|"):
        rest = rest.split()[0]  # "numpy 1.26 py311_0": version, then a conda build string
    rest = rest.replace(" ", "")
    if name == "pip" or name.startswith("__"):  # pip itself, virtual packages (__glibc, __cuda)
        return None
    if name in CONDA_ONLY or name.startswith("r-"):
        raise EnvironmentSpecError(
            f"{path}: {dep.strip()!r} is a conda-only package ({name} has no PyPI equivalent)",
            hint=f"remove {name} from the conda file (mltrain installs conda files from PyPI with uv), "
            "or use build: docker with a base image that has it",
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


def _pip_section(entries: list[object], path: Path) -> list[str]:
    """The ``pip:`` list as is, with ``-r FILE`` read (relative to the conda file, as conda does)."""
    out: list[str] = []
    for entry in entries:
        text = str(entry).strip()
        if text.startswith(("-r ", "--requirement ")):
            req = Path(text.split(None, 1)[1].strip()).expanduser()
            req = req if req.is_absolute() else path.parent / req
            if not req.is_file():
                raise EnvironmentSpecError(f"{path}: {text!r}: {req} does not exist", hint="fix the path")
            lines = [line.split(" #", 1)[0].strip() for line in req.read_text().splitlines()]
            out += [line for line in lines if line and not line.startswith("#")]
        elif text:
            out.append(text)
    return out


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
            unknown = set(dep) - {"pip"}
            if unknown:
                raise EnvironmentSpecError(
                    f"{p}: unknown entry {sorted(unknown)[0]!r} in dependencies",
                    hint="only a `pip:` list may be nested",
                )
            reqs += _pip_section(dep.get("pip") or [], p)
            continue
        text = str(dep).strip()
        bare = text.split("::", 1)[-1].strip()
        if re.match(r"^python(\s|=|>|<|$)", bare):
            found = re.search(r"(\d+\.\d+)", bare)
            python = found.group(1) if found else None
            continue
        req = _conda_to_pip(text, p)
        if req:
            reqs.append(req)
    return CondaSpec(doc.get("name"), python, tuple(reqs))
