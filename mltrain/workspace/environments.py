"""Environments: the locks of specs (``env_locks``) and the built environments runs used (``environments``).

One store owns both tables and returns frozen records. A lock is stored once per spec hash and read
back by later resolutions. A built environment is recorded (or its ``last_used_at`` refreshed) each
time a run, a deploy or ``mltrain envs build`` uses it, keyed by its hash and its builder kind
(``venv``, ``docker``, ``system``, or ``KIND@WHERE`` for one living elsewhere); the record keeps the
spec and the lock it was built from. Building and removing environments is the builders' work
(:mod:`mltrain.environments`).
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mltrain.errors import NotFoundError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.records import Record, decode_row, record


@record
class EnvironmentRecord(Record):
    """A built environment: name, content hash, builder, Python, where it lives, when it was used,
    and the spec and lock it was built from."""

    hash: str
    builder: str  # venv | docker | system, or KIND@WHERE (e.g. venv@ssh:host) for one living elsewhere
    name: str
    version: str | None = None
    python: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # EnvSpec.as_dict()
    spec_hash: str | None = None
    lock: str | None = None  # pinned requirements
    location: str | None = None  # venv folder, interpreter path or image tag
    size_bytes: int | None = None
    created_at: float | None = None
    last_used_at: float | None = None

    @classmethod
    def from_row(cls, row: Any, **extra: Any) -> EnvironmentRecord:
        rec = decode_row(row, {"spec": dict})
        rec["lock"] = rec["spec"].pop("lock", None)  # stored inside the spec's JSON
        return super().from_row(rec, **extra)


class EnvironmentStore:
    """The locks and built-environment records of one workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- locks ---------------------------------------------------------------------------------------
    def lock(self, spec_hash: str) -> tuple[str, float] | None:
        """The lock stored for ``spec_hash`` and when it was made, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.env_locks.c.lock, t.env_locks.c.created_at).where(t.env_locks.c.spec_hash == spec_hash)
            ).first()
        return (row[0], row[1]) if row else None

    def store_lock(self, spec_hash: str, python: str, lock: str, replace: bool) -> str:
        """Store ``lock`` (replacing the stored one only when ``replace``); the lock in force."""
        key = t.env_locks.c.spec_hash == spec_hash
        values = {"python": python, "lock": lock, "created_at": now()}
        try:
            with self.db.write() as conn:
                current = conn.execute(select(t.env_locks.c.lock).where(key)).scalar()
                if current is None:
                    conn.execute(insert(t.env_locks).values(spec_hash=spec_hash, **values))
                    return lock
                if replace:
                    conn.execute(update(t.env_locks).where(key).values(**values))
                    return lock
                return str(current)  # another process locked the same spec meanwhile: use its lock
        except IntegrityError:  # the same race on a database without BEGIN IMMEDIATE (PostgreSQL)
            found = self.lock(spec_hash)
            if found is None:
                raise
            return found[0]

    # -- built environments ---------------------------------------------------------------------------
    def record_use(
        self,
        env_hash: str,
        builder: str,
        *,
        name: str,
        version: str | None,
        python: str,
        spec: dict[str, Any],
        lock: str,
        spec_hash: str,
        location: str,
        size_bytes: int | None,
    ) -> None:
        """Record a built environment, or refresh when it was used (and where, and its size when given)."""
        ts = now()
        changed: dict[str, object] = {"last_used_at": ts, "location": location, "name": name}
        if version is not None:
            changed["version"] = version
        if size_bytes is not None:
            changed["size_bytes"] = size_bytes
        first = {
            "name": name,
            "version": version,
            "python": python,
            "spec": json.dumps({**spec, "lock": lock}),
            "spec_hash": spec_hash,
            "location": location,
            "size_bytes": size_bytes,
            "created_at": ts,
            "last_used_at": ts,
        }
        for attempt in (1, 2):
            try:
                with self.db.write() as conn:
                    upsert(conn, t.environments, {"hash": env_hash, "builder": builder}, first, changed)
                return
            except IntegrityError:  # another process inserted it first (PostgreSQL has no BEGIN IMMEDIATE)
                if attempt == 2:
                    raise

    def list(self, env_hash: str | None = None) -> list[EnvironmentRecord]:
        """Every record (of ``env_hash`` only, when given), most recently used first."""
        q = select(t.environments).order_by(t.environments.c.last_used_at.desc())
        if env_hash is not None:
            q = q.where(t.environments.c.hash == env_hash)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        return [EnvironmentRecord.from_row(r) for r in rows]

    def find(self, ident: str) -> tuple[EnvironmentRecord, list[EnvironmentRecord]]:
        """The record named by a hash (or a unique prefix of one, at least 4 characters) or a name (its
        most recently used record), and the other records of that hash or name."""
        ident = ident.strip()
        records = self.list()
        lowered = ident.lower()
        by_hash = [r for r in records if len(lowered) >= 4 and r.hash.startswith(lowered)]
        if len({r.hash for r in by_hash}) > 1:
            raise NotFoundError(
                f"{ident!r} is the start of several environment hashes",
                hint="give more characters: " + ", ".join(sorted({r.hash[:16] for r in by_hash})),
            )
        if by_hash:
            return by_hash[0], by_hash[1:]
        by_name = [r for r in records if r.name == ident]
        if by_name:
            return by_name[0], by_name[1:]
        names = sorted({r.name for r in records})
        raise NotFoundError(
            f"no environment {ident!r} in this workspace",
            hint=("known: " + ", ".join(names) + "; " if names else "")
            + "`mltrain envs list` shows them; `mltrain envs build NAME` builds one",
        )

    def set_size(self, env_hash: str, builder: str, size_bytes: int) -> None:
        key = (t.environments.c.hash == env_hash) & (t.environments.c.builder == builder)
        with self.db.write() as conn:
            conn.execute(update(t.environments).where(key).values(size_bytes=size_bytes))

    def delete(self, env_hash: str, builder: str) -> None:
        key = (t.environments.c.hash == env_hash) & (t.environments.c.builder == builder)
        with self.db.write() as conn:
            conn.execute(delete(t.environments).where(key))
