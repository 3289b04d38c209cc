"""Resolution: an EnvSpec becomes a ResolvedEnvironment (spec + lock + content hash).

The lock is made once (``uv pip compile``) and kept in the workspace under the spec's hash; later
resolutions of the same spec read it back without touching the network, so an unpinned spec never
changes silently. ``relock`` (``environment.rebuild=true``) makes a new lock, once per command:
a lock made after this process started is reused as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from mltrain.environments.spec import EnvSpec
from mltrain.errors import EnvironmentSpecError

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


@dataclass(frozen=True)
class ResolvedEnvironment:
    """A spec with its lock; ``hash`` is the cache key of anything built from it."""

    spec: EnvSpec
    lock: str  # pinned requirements ("" for system environments)

    @cached_property
    def hash(self) -> str:
        """Content hash of what a build depends on: Python version, lock, base image (docker builds),
        install env vars (``PIP_*``, ``UV_*``). The name and version of the spec, and the proxies its
        builds go through, do not change it."""
        payload: dict[str, object] = {
            "python": self.spec.python,
            "lock": self.lock,
            "base_image": self.spec.base_image if self.spec.build == "docker" else None,
            "env": self.spec.install_vars,
        }
        if self.spec.build == "system":
            payload["system"] = sys.executable
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def pinned(self, package: str) -> str | None:
        """The locked version of ``package`` (None when it is not in the lock)."""
        want = package.lower().replace("_", "-")
        for line in self.lock.splitlines():
            name, sep, version = line.strip().partition("==")
            if sep and name.strip().lower().replace("_", "-") == want:
                return version.split(";")[0].strip()
        return None


def _lock_error(spec: EnvSpec, stderr: str) -> EnvironmentSpecError:
    """A clear error for a failed ``uv pip compile``: what is wrong, by name, and what to do."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = "\n    ".join(lines[-12:])
    where = f" (from {spec.sources['conda_file']})" if "conda_file" in spec.sources else ""
    missing = re.search(r"Because (\S+) was not found in the package registry", stderr)
    no_version = re.search(r"Because there is no version of (\S+?)(?:\s+and| we)", stderr)
    needs_python = re.search(r"(\S+) only supports (\S+)\.", stderr) or re.search(
        r"does not satisfy Python(\S+) and (\S+) depends on", stderr
    )
    bad_syntax = re.search(r"Couldn't parse requirement.*\n(?:.*\n)*?\s+(\S.*)\n\s+\^", stderr)
    name = spec.name
    if missing:
        pkg = missing.group(1)
        hint = f"check the spelling of {pkg} on PyPI"
        if where:
            hint += "; a conda package may have another name on PyPI: put the PyPI name in the pip: section"
        return EnvironmentSpecError(f"environment {name}: package {pkg}{where} is not on the package index", hint=hint)
    if no_version:
        pkg = no_version.group(1)
        return EnvironmentSpecError(
            f"environment {name}: no version of the package index matches {pkg}{where}",
            hint="relax or fix the version (the versions are listed on the package's PyPI page)",
        )
    if "Network connectivity is disabled" in stderr or "network was disabled" in stderr:
        return EnvironmentSpecError(
            f"environment {name}: its requirements are not locked yet and the network is disabled (UV_OFFLINE)",
            hint="run once with network access to lock and build it; later runs reuse the lock offline",
        )
    if "Failed to fetch" in stderr or "dns error" in stderr.lower() or "error sending request" in stderr:
        return EnvironmentSpecError(
            f"environment {name}: the package index cannot be reached to lock its requirements:\n    {detail}",
            hint="check the network, or UV_INDEX_URL / UV_DEFAULT_INDEX; locked environments need no network",
        )
    if "Invalid version request" in stderr:
        return EnvironmentSpecError(
            f"environment {name}: Python {spec.python} is not supported:\n    {detail}",
            hint="set environment.python to a current version, e.g. " + ".".join(map(str, sys.version_info[:2])),
        )
    if needs_python:
        return EnvironmentSpecError(
            f"environment {name}: a package does not support Python {spec.python}:\n    {detail}",
            hint="set environment.python to a version the packages support, or pick older package versions",
        )
    if bad_syntax or "Couldn't parse requirement" in stderr:
        what = bad_syntax.group(1).strip() if bad_syntax else "a requirement"
        return EnvironmentSpecError(
            f"environment {name}: {what!r} is not a valid requirement:\n    {detail}",
            hint="write requirements the pip way: name, name==1.2.3, name>=1.2 (conda's name=1.2 goes in a conda_file)",
        )
    return EnvironmentSpecError(
        f"environment {name}: cannot lock its requirements:\n    {detail}",
        hint="fix the package names or versions in the environment spec",
    )


def compile_lock(spec: EnvSpec) -> str:
    """Lock ``spec.requirements`` for ``spec.python`` with uv; a clear error when it cannot."""
    from mltrain.environments.cache import uv_bin

    if not spec.requirements:
        return ""
    env = {**os.environ, **spec.build_env}
    env.pop("VIRTUAL_ENV", None)
    cmd = [uv_bin(), "pip", "compile", "-", "--python-version", spec.python, "--no-header", "--quiet", "--no-annotate"]
    try:
        out = subprocess.run(
            cmd, input="\n".join(spec.requirements) + "\n", capture_output=True, text=True, env=env, timeout=600
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentSpecError(
            f"environment {spec.name}: locking took over 10 minutes", hint="check the package index is reachable"
        ) from exc
    if out.returncode != 0:
        raise _lock_error(spec, out.stderr)
    return out.stdout


def resolve(spec: EnvSpec, ws: Workspace, relock: bool = False) -> ResolvedEnvironment:
    """The spec with its lock: read from the workspace, or made and stored on first use.

    With ``relock`` (or ``spec.rebuild``) a new lock is made unless this process already made one.
    """
    from mltrain.environments.cache import process_started_at

    if spec.build == "system":
        return ResolvedEnvironment(spec, "")
    relock = relock or spec.rebuild
    found = ws.environments.lock(spec.spec_hash)
    if found is not None and not (relock and found[1] < process_started_at()):
        return ResolvedEnvironment(spec, found[0])
    if spec.requirements:
        print(
            f"mltrain: locking environment {spec.name} ({len(spec.requirements)} requirements, Python {spec.python}) "
            "with uv pip compile; the lock is stored and reused by later runs",
            file=sys.stderr,
            flush=True,
        )
    lock = ws.environments.store_lock(spec.spec_hash, spec.python, compile_lock(spec), replace=found is not None)
    return ResolvedEnvironment(spec, lock)
