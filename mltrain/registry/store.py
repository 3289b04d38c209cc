"""Model versions: register, look up (``NAME``, ``NAME:VERSION``, ``NAME@alias``), load, download.

Versions of a name are 1, 2, 3, ... in registration order; concurrent registrations of one name
get distinct versions (the next version is chosen inside the write transaction, and the unique
(name, version) constraint makes any race on other databases retry).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mltrain.errors import NotFoundError, RegistryError
from mltrain.registry.formats import check_model_file, detect_format
from mltrain.registry.version import ModelVersion, parse_ref
from mltrain.workspace import tables as t
from mltrain.workspace.blobs import BlobStore
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.names import check_name
from mltrain.workspace.paths import check_relpath, safe_join

if TYPE_CHECKING:
    from mltrain.workspace import Workspace


def _files_of(src: Path) -> list[tuple[str, Path]]:
    if src.is_file():
        return [(src.name, src)]
    return sorted((str(p.relative_to(src)).replace(os.sep, "/"), p) for p in src.rglob("*") if p.is_file())


class ModelRegistry:
    """The models of one workspace."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    @classmethod
    def of(cls, ws: Workspace) -> ModelRegistry:
        """The registry of workspace ``ws``."""
        return cls(ws.db, ws.blobs)

    def register(
        self,
        name: str,
        source: str | os.PathLike[str],
        *,
        format: str | None = None,  # noqa: A002 - the user-facing name
        framework: str | None = None,
        framework_version: str | None = None,
        description: str | None = None,
        cpu: float | None = None,
        memory_gb: float | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        run_id: str | None = None,
        env_hash: str | None = None,
    ) -> ModelVersion:
        """Store the file or folder ``source`` as the next version of ``name``."""
        check_name(name, "model", RegistryError)
        src = Path(source)
        if not src.exists():
            raise RegistryError(
                f"cannot register {name}: {src} does not exist",
                hint="check the model path (relative to the run folder for a run's model)",
            )
        files = _files_of(src)
        found = [check_model_file(p, rel, format if src.is_file() else None) for rel, p in files]
        stored = [(rel, *self.blobs.put_file(p)) for rel, p in files]
        if not stored:
            raise RegistryError(f"cannot register {name}: the folder {src} is empty")
        if src.is_file():
            sha = stored[0][1]
        else:
            sha = self.blobs.put_bytes(json.dumps([list(f) for f in stored], separators=(",", ":")).encode())
        fmt = (found[0] if src.is_file() else None) or detect_format(
            stored[0][0] if src.is_file() else src.name, format
        )
        values = {
            "name": name,
            "path": src.name,
            "sha256": sha,
            "format": fmt,
            "framework": framework,
            "framework_version": framework_version,
            "description": description,
            "cpu": cpu,
            "memory_gb": memory_gb,
            "tags": json.dumps({k: str(v) for k, v in (tags or {}).items()}),
            "properties": json.dumps({k: str(v) for k, v in (properties or {}).items()}),
            "run_id": run_id,
            "env_hash": env_hash,
            "archived": False,
        }
        for _attempt in range(20):
            try:
                with self.db.write() as conn:
                    latest = conn.execute(select(func.max(t.models.c.version)).where(t.models.c.name == name)).scalar()
                    version = int(latest or 0) + 1
                    model_id = conn.execute(
                        insert(t.models).values(version=version, created_at=now(), **values)
                    ).inserted_primary_key[0]
                    conn.execute(
                        insert(t.model_files),
                        [{"model_id": model_id, "relpath": rel, "sha256": s, "size": n} for rel, s, n in stored],
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
                dict(r._mapping)
                for r in conn.execute(
                    select(t.model_files.c.relpath, t.model_files.c.sha256, t.model_files.c.size)
                    .where(t.model_files.c.model_id == row.id)
                    .order_by(t.model_files.c.relpath)
                )
            ]
            aliases = list(
                conn.execute(
                    select(t.model_aliases.c.alias).where(
                        t.model_aliases.c.name == name, t.model_aliases.c.version == row.version
                    )
                ).scalars()
            )
        return self._version(row, files, aliases)

    @staticmethod
    def _version(row: Any, files: list[dict[str, Any]], aliases: list[str]) -> ModelVersion:
        rec = dict(row._mapping)
        rec["tags"] = json.loads(rec["tags"] or "{}")
        rec["properties"] = json.loads(rec["properties"] or "{}")
        rec["archived"] = bool(rec["archived"])
        return ModelVersion(files=files, aliases=sorted(aliases), **rec)

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
        return [self._version(r, [], aliases.get((r.name, r.version), [])) for r in rows]

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
        return [self._version(r, [], []) for r in rows]

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
        mv = self.get(ref)
        with self.db.write() as conn:
            conn.execute(update(t.models).where(t.models.c.id == mv.id).values(archived=archived))
        return self.get(mv.ref)

    def load(self, ref: str, trusted: list[str] | tuple[str, ...] | None = None) -> Any:
        """The estimator of ``ref`` loaded in this process, after checking the stored file's sha256.

        joblib files are unpickled (load only models you trust); skops files load only when every
        type they hold is trusted by skops or named in ``trusted`` (RegistryError lists the others).
        """
        from mltrain.registry.loading import load_version

        return load_version(self.blobs, self.get(ref), trusted)

    def download(self, ref: str, dest: str | os.PathLike[str]) -> Path:
        """Write the model's file(s) under ``dest``, each checked against its sha256; return the path."""
        mv = self.get(ref)
        root = Path(dest)
        single = len(mv.files) == 1 and mv.files[0]["relpath"] == mv.path
        target = safe_join(root, mv.path)
        outs = [target if single else safe_join(target, check_relpath(f["relpath"])) for f in mv.files]
        for f, out in zip(mv.files, outs, strict=True):
            self.blobs.copy_to(f["sha256"], out)
        return target
