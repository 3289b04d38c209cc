"""Registered models: versions, their files, aliases; ``NAME[:VERSION|@ALIAS]`` references.

One store owns the tables (``models``, ``model_files``, ``model_aliases``) and returns frozen
records. Versions of a name are 1, 2, 3, ... in registration order; concurrent registrations of one
name get distinct versions (the next version is chosen inside the write transaction, and the unique
(name, version) constraint makes any race on other databases retry). Storing the files and checking
their format is the registry's (:mod:`mltrain.registry.store`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mltrain.errors import NotFoundError, RegistryError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.names import check_name
from mltrain.workspace.records import Record, record

_REF = re.compile(r"^(?P<name>[^:@]+)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_.-]+))?$")


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Split ``NAME[:VERSION|@ALIAS]``."""
    m = _REF.match(ref.strip())
    if not m:
        raise RegistryError(f"{ref!r} is not a model reference", hint="write NAME, NAME:VERSION or NAME@ALIAS")
    version = m.group("version")
    return m.group("name"), int(version) if version else None, m.group("alias")


@record
class ModelFile(Record):
    """One file of a version: its path in the model (the file's name, or relative to the folder)."""

    relpath: str
    sha256: str
    size: int


@record
class ModelVersion(Record):
    """One registered version of a model (``files`` is filled by ``get``, empty in listings)."""

    JSON_COLUMNS = {"tags": dict, "properties": dict}
    BOOL_COLUMNS = ("archived",)

    name: str
    version: int
    path: str  # the file or folder name of the model
    sha256: str  # of the file, or of the folder's manifest
    format: str  # joblib | skops
    framework: str | None = None
    framework_version: str | None = None
    description: str | None = None
    cpu: float | None = None
    memory_gb: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    env_hash: str | None = None
    created_at: float = 0.0
    archived: bool = False
    files: list[ModelFile] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    id: int = 0

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class ModelStore:
    """The model versions of one workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add_version(self, name: str, files: Sequence[ModelFile], **values: Any) -> ModelVersion:
        """Record the next version of ``name`` with its files (already stored as blobs), all in one
        transaction; ``values``: the other columns (path, sha256, format, framework, tags, ...)."""
        check_name(name, "model", RegistryError)
        row = {
            **values,
            "name": name,
            "tags": json.dumps({k: str(v) for k, v in (values.get("tags") or {}).items()}),
            "properties": json.dumps({k: str(v) for k, v in (values.get("properties") or {}).items()}),
            "archived": False,
        }
        for _attempt in range(20):
            try:
                with self.db.write() as conn:
                    latest = conn.execute(select(func.max(t.models.c.version)).where(t.models.c.name == name)).scalar()
                    version = int(latest or 0) + 1
                    model_id = conn.execute(
                        insert(t.models).values(version=version, created_at=now(), **row)
                    ).inserted_primary_key[0]
                    conn.execute(
                        insert(t.model_files),
                        [
                            {"model_id": model_id, "relpath": f.relpath, "sha256": f.sha256, "size": f.size}
                            for f in files
                        ],
                    )
                return self.get(f"{name}:{version}")
            except IntegrityError:
                continue
        raise RegistryError(f"could not allocate a version for {name}: too many concurrent registrations")

    def get(self, ref: str, include_archived: bool = False) -> ModelVersion:
        """The version ``ref`` points at: NAME (latest not archived), NAME:VERSION or NAME@ALIAS."""
        name, version, alias = parse_ref(ref)
        with self.db.read() as conn:
            if alias:
                version = conn.execute(
                    select(t.model_aliases.c.version).where(
                        t.model_aliases.c.name == name, t.model_aliases.c.alias == alias
                    )
                ).scalar()
                if version is None:
                    raise NotFoundError(
                        f"model {name} has no alias {alias!r}",
                        hint=f"set it with `mltrain models alias {name} VERSION {alias}`",
                    )
            q = select(t.models).where(t.models.c.name == name)
            if version is not None:
                q = q.where(t.models.c.version == version)
            elif not include_archived:
                q = q.where(t.models.c.archived.is_(False))
            row = conn.execute(q.order_by(t.models.c.version.desc()).limit(1)).first()
            if row is None:
                hint = "list models with `mltrain models list`"
                if version is None and conn.execute(select(t.models.c.id).where(t.models.c.name == name)).first():
                    hint = f"every version of {name} is archived: name one (NAME:VERSION) or restore it"
                raise NotFoundError(f"no model {ref!r} in this workspace", hint=hint)
            files = [
                ModelFile.from_row(r)
                for r in conn.execute(
                    select(t.model_files.c.relpath, t.model_files.c.sha256, t.model_files.c.size)
                    .where(t.model_files.c.model_id == row.id)
                    .order_by(t.model_files.c.relpath)
                )
            ]
            aliases = conn.execute(
                select(t.model_aliases.c.alias).where(
                    t.model_aliases.c.name == name, t.model_aliases.c.version == row.version
                )
            ).scalars()
            return ModelVersion.from_row(row, files=files, aliases=sorted(aliases))

    def list(self, name: str | None = None, include_archived: bool = False) -> list[ModelVersion]:
        """Versions (of one name, or the latest of every name), newest first."""
        with self.db.read() as conn:
            q = select(t.models)
            if name:
                q = q.where(t.models.c.name == name).order_by(t.models.c.version.desc())
            else:
                latest = (
                    select(t.models.c.name, func.max(t.models.c.version).label("v"))
                    .group_by(t.models.c.name)
                    .subquery()
                )
                q = q.join(latest, (latest.c.name == t.models.c.name) & (latest.c.v == t.models.c.version))
                q = q.order_by(t.models.c.name)
            if not include_archived:
                q = q.where(t.models.c.archived.is_(False))
            rows = conn.execute(q).all()
            alias_rows = conn.execute(select(t.model_aliases)).all()
        aliases: dict[tuple[str, int], list[str]] = {}
        for a in alias_rows:
            aliases.setdefault((a.name, a.version), []).append(a.alias)
        return [ModelVersion.from_row(r, aliases=aliases.get((r.name, r.version), [])) for r in rows]

    def by_run(self, run_id: str) -> list[ModelVersion]:
        """Versions registered from run ``run_id``."""
        return self.by_runs([run_id])

    def by_runs(self, run_ids: Iterable[str]) -> list[ModelVersion]:
        """Versions registered from any of ``run_ids``, in registration order."""
        ids = sorted(set(run_ids))
        if not ids:
            return []
        with self.db.read() as conn:
            rows = conn.execute(select(t.models).where(t.models.c.run_id.in_(ids)).order_by(t.models.c.id)).all()
        return [ModelVersion.from_row(r) for r in rows]

    def set_alias(self, name: str, version: int, alias: str) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (moving it from any other version)."""
        parse_ref(f"{name}@{alias}")
        self.get(f"{name}:{version}")
        with self.db.write() as conn:
            upsert(conn, t.model_aliases, {"name": name, "alias": alias}, {"version": version}, {"version": version})
        return self.get(f"{name}:{version}")

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``; the version it pointed at (NotFoundError when there is no such alias)."""
        parse_ref(f"{name}@{alias}")
        key = (t.model_aliases.c.name == name) & (t.model_aliases.c.alias == alias)
        with self.db.write() as conn:
            version = conn.execute(select(t.model_aliases.c.version).where(key)).scalar()
            if version is None:
                raise NotFoundError(
                    f"model {name} has no alias {alias!r}", hint=f"`mltrain models show {name}` lists its aliases"
                )
            conn.execute(delete(t.model_aliases).where(key))
        return int(version)

    def set_archived(self, ref: str, archived: bool = True) -> ModelVersion:
        """Archive a version (hidden from listings and from ``NAME``) or restore it."""
        mv = self.get(ref)
        with self.db.write() as conn:
            conn.execute(update(t.models).where(t.models.c.id == mv.id).values(archived=archived))
        return self.get(mv.ref)
