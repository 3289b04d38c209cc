"""Resolution: an EnvSpec becomes a ResolvedEnvironment (spec + lock + content hash).

The lock is made once (``uv pip compile``) and kept in the workspace under the spec's hash; later
resolutions of the same spec read it back without touching the network, so an unpinned spec never
changes silently. ``rebuild`` makes a new lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from mltrain.environments.cache import uv_bin
from mltrain.environments.spec import EnvSpec
from mltrain.errors import EnvironmentSpecError
from mltrain.workspace import tables as t
from mltrain.workspace.db import now

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


@dataclass(frozen=True)
class ResolvedEnvironment:
    """A spec with its lock; ``hash`` is the cache key of anything built from it."""

    spec: EnvSpec
    lock: str  # pinned requirements ("" for system environments)

    @property
    def hash(self) -> str:
        payload = {
            "python": self.spec.python,
            "lock": self.lock,
            "base_image": self.spec.base_image,
            "env": self.spec.build_env,
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


def compile_lock(spec: EnvSpec) -> str:
    """Lock ``spec.requirements`` for ``spec.python`` with uv; a clear error when it cannot."""
    if not spec.requirements:
        return ""
    env = {**os.environ, **spec.build_env}
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
        detail = "\n    ".join(line for line in out.stderr.strip().splitlines()[-12:] if line.strip())
        hint = "fix the package names or versions in the environment spec"
        if "not found in the package registry" in out.stderr or "was not found" in out.stderr:
            hint = "a package name is wrong or is not on the package index: check its spelling on PyPI"
        elif "Failed to fetch" in out.stderr or "dns error" in out.stderr.lower():
            hint = "the package index cannot be reached; check the network or UV_INDEX_URL / PIP_INDEX_URL"
        raise EnvironmentSpecError(f"environment {spec.name}: cannot lock its requirements:\n    {detail}", hint=hint)
    return out.stdout


def resolve(spec: EnvSpec, ws: Workspace, relock: bool = False) -> ResolvedEnvironment:
    """The spec with its lock: read from the workspace, or made and stored on first use."""
    if spec.build == "system":
        return ResolvedEnvironment(spec, "")
    relock = relock or spec.rebuild
    with ws.db.read() as conn:
        lock = conn.execute(select(t.env_locks.c.lock).where(t.env_locks.c.spec_hash == spec.spec_hash)).scalar()
    if lock is None or relock:
        new_lock = compile_lock(spec)
        with ws.db.write() as conn:
            values = {"python": spec.python, "lock": new_lock, "created_at": now()}
            exists = conn.execute(select(t.env_locks.c.spec_hash).where(t.env_locks.c.spec_hash == spec.spec_hash))
            if exists.first() is None:
                conn.execute(insert(t.env_locks).values(spec_hash=spec.spec_hash, **values))
            elif relock:
                conn.execute(update(t.env_locks).where(t.env_locks.c.spec_hash == spec.spec_hash).values(**values))
            lock = conn.execute(select(t.env_locks.c.lock).where(t.env_locks.c.spec_hash == spec.spec_hash)).scalar()
    return ResolvedEnvironment(spec, lock)
