"""The locked wheels of an environment for a host that cannot reach the package index.

uv keeps no wheel files in its cache (it unpacks them), so the wheels are remade: the lock is
installed with ``uv pip install --prefix`` for the host's Python and platform (from uv's cache,
offline first; from the index when the cache lacks something), then each installed distribution is
packed back into a wheel (its RECORD's files, nothing the installer added): what it installed
outside site-packages (scripts, headers, data) goes back into the wheel's ``.data`` folder, scripts
with the ``#!python`` line an installer rewrites for the host. The wheelhouse is kept
in the environment cache by lock hash and platform, made once, the same bytes each time: the host's
content-addressed blob cache then receives only the wheels it lacks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from mltrain.environments.base import LogFn
from mltrain.environments.cache import cache_root, file_lock, uv_bin
from mltrain.environments.resolve import ResolvedEnvironment
from mltrain.errors import EnvironmentSpecError

READY = ".complete"
PACKING = "p2"  # how wheels are remade (p2: with their .data): wheelhouses of an older way are made again
ADDED_BY_INSTALLER = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD", "uv_cache.json")
MANYLINUX = range(17, 41)  # the manylinux_2_X platforms uv can target
FIX = (
    "run once where this machine reaches the package index (the wheels are then taken from uv's cache), "
    "let the host reach an index or a mirror (e.g. UV_INDEX_URL in environment.env_vars), "
    "or pin versions that publish wheels for the host's platform"
)


def uv_platform(probe: dict[str, Any]) -> str:
    """uv's ``--python-platform`` of a host from its probe (machine, C library)."""
    machine = str(probe.get("machine") or "")
    libc, version = (list(probe.get("libc") or ["", ""]) + ["", ""])[:2]
    if machine not in ("x86_64", "aarch64"):
        raise EnvironmentSpecError(
            f"the host runs on {machine or 'an unknown machine'}: this machine can ship wheels only to "
            "x86_64 and aarch64 Linux hosts",
            hint="let the host reach the package index, or use an environment with build: system or docker",
        )
    if libc != "glibc":
        return f"{machine}-unknown-linux-musl"
    minor = int(version.split(".")[1]) if version.count(".") >= 1 and version.split(".")[1].isdigit() else 17
    return f"{machine}-manylinux_2_{min(max(minor, MANYLINUX.start), MANYLINUX.stop - 1)}"


def fits(filename: str, python: str, machine: str) -> bool:
    """Does the wheel ``filename`` install on CPython ``python`` (X.Y) on Linux ``machine``?"""
    parts = filename[: -len(".whl")].split("-")
    if len(parts) < 5:
        return False
    pys, abis, plats = (set(p.split(".")) for p in parts[-3:])
    major, minor = python.split(".")
    cp = f"cp{major}{minor}"
    py_ok = bool(pys & {f"py{major}", f"py{major}{minor}", cp}) or any(
        p.startswith(f"cp{major}") and abis & {"abi3"} and int(p[3:] or 0) <= int(minor) for p in pys
    )
    abi_ok = bool(abis & {"none", "abi3", cp})
    plat_ok = "any" in plats or any(
        p.startswith(("linux_", "manylinux", "musllinux")) and p.endswith(machine) for p in plats
    )
    return py_ok and abi_ok and plat_ok


def wheelhouse(env: ResolvedEnvironment, probe: dict[str, Any], log: LogFn) -> list[Path]:
    """The wheels of ``env``'s lock for the host of ``probe`` (made once per lock and platform);
    EnvironmentSpecError naming the packages this machine cannot provide, and the fix."""
    platform = uv_platform(probe)
    folder = cache_root() / "wheels" / f"{env.hash[:24]}-{platform}-{PACKING}"
    with file_lock(folder.parent / f".{folder.name}.lock"):
        if not (folder / READY).exists():
            _make(env, platform, folder, log)
    wheels = sorted(folder.glob("*.whl"))
    misfits = [w.name for w in wheels if not fits(w.name, env.spec.python, str(probe["machine"]))]
    if misfits:
        raise EnvironmentSpecError(
            f"environment {env.spec.name}: this machine has no wheels of {', '.join(misfits)} for the host "
            f"(Python {env.spec.python}, {platform}), which cannot reach the package index",
            hint=FIX,
        )
    return wheels


def _requirements(lock: str) -> list[str]:
    return [line.strip() for line in lock.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _install(
    env: ResolvedEnvironment, requirements: list[str], target: Path, platform: str, online: bool
) -> tuple[bool, str]:
    """``uv pip install --prefix`` of ``requirements`` for the host (with the index the lock was made
    with): site-packages, scripts (``bin``), headers and data each in their own place under ``target``."""
    cmd = [uv_bin(), "pip", "install", "--quiet", "--no-deps", "--prefix", str(target)]
    cmd += ["--python-version", env.spec.python, "--python-platform", platform, *([] if online else ["--offline"])]
    env_vars = {k: v for k, v in {**os.environ, **env.spec.build_env}.items() if k != "VIRTUAL_ENV"}
    listed = target.with_name(target.name + ".txt")  # a file: lines such as ``-e file:///...`` stay whole
    listed.write_text("\n".join(requirements) + "\n")
    out = subprocess.run([*cmd, "-r", str(listed)], capture_output=True, text=True, env=env_vars, timeout=1800)
    return out.returncode == 0, out.stderr


def _make(env: ResolvedEnvironment, platform: str, folder: Path, log: LogFn) -> None:
    """Install the lock into a scratch folder (offline from uv's cache first) and pack each
    distribution there into ``folder`` (the caller holds its lock)."""
    requirements = _requirements(env.lock)
    log(f"collecting the {len(requirements)} locked wheels of environment {env.spec.name} for {platform}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=folder.parent) as scratch:
        target = Path(scratch, "site")
        ok, err = _install(env, requirements, target, platform, online=False)
        if not ok:
            ok, err = _install(env, requirements, target, platform, online=True)
        if not ok:
            missing = [r for r in requirements if not _fetchable(env, r, Path(scratch), platform)]
            detail = "\n    ".join(line for line in err.strip().splitlines()[-8:] if line.strip())
            raise EnvironmentSpecError(
                f"environment {env.spec.name}: this machine cannot provide wheels of "
                f"{', '.join(missing) or 'its locked packages'} for the host (Python {env.spec.python}, "
                f"{platform}), which cannot reach the package index:\n    {detail}",
                hint=FIX,
            )
        house = Path(scratch, "house")
        house.mkdir()
        for info in sorted(target.glob("lib*/python*/site-packages/*.dist-info")):
            pack(info.parent, info, house)
        house.joinpath(READY).write_text(env.hash + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(house, folder)


def _fetchable(env: ResolvedEnvironment, requirement: str, scratch: Path, platform: str) -> bool:
    """Can this machine install ``requirement`` for the host (from uv's cache, else the index)?"""
    target = Path(tempfile.mkdtemp(dir=scratch))
    return any(_install(env, [requirement], target, platform, online)[0] for online in (False, True))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_name(info: Path) -> str:
    """``name-version-pys-abis-plats.whl`` from the dist-info folder and its WHEEL tags."""
    name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
    tags = [
        line.split(":", 1)[1].strip() for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag:")
    ]
    parts: list[list[str]] = [[], [], []]
    for tag in tags or ["py3-none-any"]:
        for i, piece in enumerate(tag.split("-")):
            if piece not in parts[i]:
                parts[i].append(piece)
    name = name.replace("-", "_").replace(".", "_")
    return f"{name}-{version}-{'-'.join('.'.join(p) for p in parts)}.whl"


def pack(site: Path, info: Path, into: Path) -> Path:
    """The installed distribution of ``info`` (in ``site``, the site-packages of an install prefix) as
    a wheel in ``into``: the files of its RECORD (not entry-point scripts, bytecode, nor the
    installer's own files), those outside ``site`` in the wheel's ``.data`` folder, in a fixed order
    with fixed times, so the same install packs to the same bytes."""
    import csv
    import io

    prefix = site.parents[2]  # PREFIX/lib/pythonX.Y/site-packages
    data_dir = info.name[: -len(".dist-info")] + ".data"
    entry_points = _entry_point_scripts(info)
    members: dict[str, Path] = {}  # name in the wheel -> installed file
    with open(info / "RECORD", newline="") as f:
        for row in csv.reader(f):
            path = row[0] if row else ""
            full = Path(os.path.normpath(site / path)) if path else site
            if not path or not full.is_file() or "__pycache__" in full.parts:
                continue
            if full.is_relative_to(site):
                rel = full.relative_to(site).as_posix()
                if rel.split("/", 1)[0] == info.name and rel.split("/", 1)[1] in ADDED_BY_INSTALLER:
                    continue
                members[rel] = full
            elif full.is_relative_to(prefix):
                name = _data_name(full.relative_to(prefix).parts, entry_points)
                if name is not None:
                    members[f"{data_dir}/{name}"] = full
    names = sorted(members, key=lambda p: (p.startswith(info.name + "/"), p))
    wheel = into / _wheel_name(info)
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            data = members[name].read_bytes()
            if name.startswith(f"{data_dir}/scripts/"):
                data = _portable_script(data)
            item = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            item.external_attr = (members[name].stat().st_mode & 0o777 | 0o100000) << 16
            zf.writestr(item, data, zipfile.ZIP_DEFLATED)
            writer.writerow([name, _record_hash(data), len(data)])
        writer.writerow([f"{info.name}/RECORD", "", ""])
        zf.writestr(zipfile.ZipInfo(f"{info.name}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), record.getvalue())
    return wheel


def _entry_point_scripts(info: Path) -> set[str]:
    """The scripts an installer makes from ``info``'s entry points (made again on the host)."""
    import configparser

    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read(info / "entry_points.txt")
    except configparser.Error:
        return set()
    return {name for sect in ("console_scripts", "gui_scripts") if parser.has_section(sect) for name in parser[sect]}


def _data_name(parts: tuple[str, ...], entry_points: set[str]) -> str | None:
    """Where a file installed at PREFIX/``parts`` (outside site-packages) goes in the wheel's ``.data``
    folder: ``scripts/``, ``headers/`` or ``data/`` (None: an entry-point script, made on the host)."""
    if len(parts) == 2 and parts[0] == "bin":
        return None if parts[1] in entry_points else f"scripts/{parts[1]}"
    if len(parts) > 4 and parts[:2] == ("include", "site"):  # include/site/pythonX.Y/DIST/...
        return "headers/" + "/".join(parts[4:])
    return "data/" + "/".join(parts)


def _portable_script(data: bytes) -> bytes:
    """A script as a wheel holds it: the interpreter line the installer wrote back to ``#!python``."""
    head, sep, rest = data.partition(b"\n")
    if head.startswith(b"#!/bin/sh") and rest.startswith(b"'''exec'"):  # the form of a long interpreter path
        return b"#!python\n" + rest.split(b"\n", 2)[2]
    if head.startswith(b"#!") and b"python" in head:
        return b"#!python" + sep + rest
    return data
