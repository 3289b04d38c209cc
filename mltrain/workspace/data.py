"""Data assets: versions, their manifests, aliases and the runs that read or wrote them.

One store owns the tables (``data_versions``, ``data_files``, ``data_aliases``, ``run_data``) and
returns frozen records. A version is immutable once recorded except for its ``archived`` flag and
aliases; it is recorded with its whole manifest in one transaction, so a version is never half there.
Versions of a name are 1, 2, 3, ... in creation order (chosen inside the write transaction).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mltrain.errors import DataError, NotFoundError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.names import check_name

TYPES = ("uri_file", "uri_folder")
DIRECTIONS = ("input", "output")
PREFIX = "data:"


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a version: where it sits in the version, its size and what vouches for its content."""

    relpath: str  # '/'-separated, relative, no '..'
    size: int
    sha256: str | None = None  # of the content; None for a reference its store vouches for by checksum
    checksum: str | None = None  # the store's own (``etag:...``); None where it keeps none

    @property
    def identity(self) -> str:
        """What the digest covers for this file's content."""
        return f"sha256:{self.sha256}" if self.sha256 else str(self.checksum)


@dataclass(frozen=True)
class DataVersion:
    """One recorded version of a data asset (``manifest`` is filled by ``get``, empty in listings)."""

    id: int
    name: str
    version: int
    type: str
    source: str
    stored: bool  # copied into the datastore as blobs by sha256 (else the source itself is read)
    datastore: str
    datastore_kind: str
    datastore_config: Mapping[str, Any]
    digest: str
    size: int
    file_count: int
    created_at: float
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    archived: bool = False
    producer_run_id: str | None = None
    aliases: tuple[str, ...] = ()
    manifest: tuple[ManifestEntry, ...] = ()

    @property
    def ref(self) -> str:
        return f"{PREFIX}{self.name}:{self.version}"


@dataclass(frozen=True)
class DataLink:
    """A run's input or output: which version (or plain URI) under which name, how it was delivered."""

    run_id: str
    direction: str  # input | output
    name: str
    data_name: str | None
    data_version: int | None
    version_id: int | None
    uri: str | None
    digest: str | None
    mode: str | None
    created_at: float


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """sha256 over the manifest sorted by path: the same files give the same digest wherever they live."""
    rows = sorted([e.relpath, e.size, e.identity] for e in entries)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def _listing(names: Sequence[Any], what: str) -> str:
    shown = ", ".join(str(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
    return f"{what}: {shown}" if names else f"no {what}"


class DataAssetStore:
    """The data assets of one workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------------
    def add_version(
        self,
        name: str,
        *,
        type: str,  # noqa: A002 - the user-facing name
        source: str,
        stored: bool,
        datastore: str,
        datastore_kind: str,
        datastore_config: Mapping[str, Any],
        manifest: Sequence[ManifestEntry],
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        producer_run_id: str | None = None,
    ) -> DataVersion:
        """Record the next version of ``name`` with its manifest, all in one transaction."""
        check_name(name, "data asset", DataError)
        if type not in TYPES:
            raise DataError(f"unknown data type {type!r}", hint=f"use one of {', '.join(TYPES)}")
        if not manifest:
            raise DataError(f"data asset {name}: a version needs at least one file")
        values = {
            "name": name,
            "type": type,
            "description": description,
            "tags": json.dumps({str(k): str(v) for k, v in (tags or {}).items()}),
            "source": source,
            "stored": stored,
            "datastore": datastore,
            "datastore_kind": datastore_kind,
            "datastore_config": json.dumps(dict(datastore_config), sort_keys=True),
            "digest": manifest_digest(manifest),
            "size": sum(e.size for e in manifest),
            "file_count": len(manifest),
            "archived": False,
            "producer_run_id": producer_run_id,
        }
        rows = [{"relpath": e.relpath, "size": e.size, "sha256": e.sha256, "checksum": e.checksum} for e in manifest]
        for _attempt in range(20):
            try:
                with self.db.write() as conn:
                    latest = conn.execute(
                        select(func.max(t.data_versions.c.version)).where(t.data_versions.c.name == name)
                    ).scalar()
                    version = int(latest or 0) + 1
                    vid = conn.execute(
                        insert(t.data_versions).values(version=version, created_at=now(), **values)
                    ).inserted_primary_key[0]
                    conn.execute(insert(t.data_files), [{"version_id": vid, **r} for r in rows])
                return self.get(name, version)
            except IntegrityError:
                continue  # another process took this version number at the same moment
        raise DataError(f"could not allocate a version for {name}: too many concurrent creations")

    def set_alias(self, name: str, version: int, alias: str) -> DataVersion:
        """Point ``NAME@alias`` at ``version`` (moving it from any other version)."""
        check_name(alias, "alias", DataError)
        if alias.isdigit():
            raise DataError(f"alias {alias!r} is a number", hint="an alias needs a letter, e.g. prod or v2")
        self.get(name, version)
        with self.db.write() as conn:
            upsert(conn, t.data_aliases, {"name": name, "alias": alias}, {"version": version}, {"version": version})
        return self.get(name, version)

    def set_archived(self, name: str, version: int, archived: bool = True) -> DataVersion:
        """Archive a version (hidden from listings and from ``data:NAME``) or restore it."""
        dv = self.get(name, version)
        with self.db.write() as conn:
            conn.execute(update(t.data_versions).where(t.data_versions.c.id == dv.id).values(archived=archived))
        return self.get(name, version)

    def link_run(
        self,
        run_id: str,
        direction: str,
        name: str,
        *,
        version: DataVersion | None = None,
        uri: str | None = None,
        digest: str | None = None,
        mode: str | None = None,
    ) -> None:
        """Record that run ``run_id`` read (``input``) or wrote (``output``) a version or a plain URI as ``name``."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        values = {
            "version_id": version.id if version else None,
            "uri": uri,
            "digest": version.digest if version and digest is None else digest,
            "mode": mode,
            "created_at": now(),
        }
        with self.db.write() as conn:
            upsert(conn, t.run_data, {"run_id": run_id, "direction": direction, "name": name}, values, values)

    # -- reading -------------------------------------------------------------------------------
    def get(
        self,
        name: str,
        version: int | None = None,
        alias: str | None = None,
        include_archived: bool = False,
        manifest: bool = True,
    ) -> DataVersion:
        """A version with its manifest: ``version``, the one ``alias`` points at, else the latest not archived
        (without its manifest unless ``manifest``: see :meth:`manifest_page` for a long one).

        An unknown name, version or alias is a NotFoundError naming the valid choices."""
        with self.db.read() as conn:
            versions = [
                (r.version, bool(r.archived))
                for r in conn.execute(
                    select(t.data_versions.c.version, t.data_versions.c.archived)
                    .where(t.data_versions.c.name == name)
                    .order_by(t.data_versions.c.version)
                )
            ]
            if not versions:
                names = list(conn.execute(select(t.data_versions.c.name).distinct().order_by("name")).scalars())
                raise NotFoundError(
                    f"no data asset {name!r} in this workspace ({_listing(names, 'data assets')})",
                    hint="list them with `mltrain data list`; create one with `mltrain data create NAME PATH`",
                )
            if alias is not None:
                version = conn.execute(
                    select(t.data_aliases.c.version).where(
                        t.data_aliases.c.name == name, t.data_aliases.c.alias == alias
                    )
                ).scalar()
                if version is None:
                    known = list(
                        conn.execute(select(t.data_aliases.c.alias).where(t.data_aliases.c.name == name)).scalars()
                    )
                    raise NotFoundError(
                        f"data asset {name} has no alias {alias!r} ({_listing(sorted(known), 'aliases')})",
                        hint=f"set one with `mltrain data alias {name} VERSION {alias}`",
                    )
            if version is None:
                live = [v for v, archived in versions if include_archived or not archived]
                if not live:
                    raise NotFoundError(
                        f"every version of data asset {name} is archived "
                        f"({_listing([v for v, _ in versions], 'versions')})",
                        hint=f"name one (data:{name}:VERSION) or restore it with `mltrain data archive "
                        f"{name}:VERSION --restore`",
                    )
                version = live[-1]
            elif version not in {v for v, _ in versions}:
                raise NotFoundError(
                    f"data asset {name} has no version {version} ({_listing([v for v, _ in versions], 'versions')})",
                    hint=f"see `mltrain data list {name}`",
                )
            row = conn.execute(
                select(t.data_versions).where(t.data_versions.c.name == name, t.data_versions.c.version == version)
            ).one()
            files = tuple(self._files(conn, row.id)) if manifest else ()
            aliases = self._aliases(conn, name).get((name, version), ())
        return _record(row, aliases, files)

    def manifest_page(self, version_id: int, offset: int = 0, limit: int | None = None) -> list[ManifestEntry]:
        """The manifest of a version by path, from entry ``offset``, at most ``limit`` entries."""
        with self.db.read() as conn:
            return self._files(conn, version_id, offset, limit)

    @staticmethod
    def _files(conn: Connection, version_id: int, offset: int = 0, limit: int | None = None) -> list[ManifestEntry]:
        q = select(t.data_files).where(t.data_files.c.version_id == version_id).order_by(t.data_files.c.relpath)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return [ManifestEntry(r.relpath, int(r.size), r.sha256, r.checksum) for r in conn.execute(q)]

    def every_version(self) -> list[DataVersion]:
        """Every version of every asset, archived ones too, by name and newest first (without manifests)."""
        dv = t.data_versions
        with self.db.read() as conn:
            rows = conn.execute(select(dv).order_by(dv.c.name, dv.c.version.desc())).all()
            aliases = self._aliases(conn, None)
        return [_record(r, aliases.get((r.name, r.version), ())) for r in rows]

    def list(self, name: str | None = None, include_archived: bool = False) -> list[DataVersion]:
        """Every version of ``name`` (newest first), or the latest version of every asset (by name)."""
        dv = t.data_versions
        q = select(dv)
        if not include_archived:
            q = q.where(dv.c.archived.is_(False))
        if name:
            q = q.where(dv.c.name == name).order_by(dv.c.version.desc())
        else:
            shown = select(dv.c.name, func.max(dv.c.version).label("v")).group_by(dv.c.name)
            if not include_archived:
                shown = shown.where(dv.c.archived.is_(False))
            latest = shown.subquery()
            q = q.join(latest, (latest.c.name == dv.c.name) & (latest.c.v == dv.c.version)).order_by(dv.c.name)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
            aliases = self._aliases(conn, name)
        return [_record(r, aliases.get((r.name, r.version), ())) for r in rows]

    def links(self, *, run_id: str | None = None, version_id: int | None = None) -> list[DataLink]:
        """The inputs and outputs of a run, or the runs that read or wrote a version."""
        rd, dv = t.run_data, t.data_versions
        q = select(rd, dv.c.name.label("data_name"), dv.c.version.label("data_version")).select_from(
            rd.outerjoin(dv, dv.c.id == rd.c.version_id)
        )
        if run_id is not None:
            q = q.where(rd.c.run_id == run_id)
        if version_id is not None:
            q = q.where(rd.c.version_id == version_id)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(rd.c.created_at, rd.c.run_id, rd.c.direction, rd.c.name)).all()
        return [
            DataLink(
                r.run_id,
                r.direction,
                r.name,
                r.data_name,
                r.data_version,
                r.version_id,
                r.uri,
                r.digest,
                r.mode,
                r.created_at,
            )  # fmt: skip
            for r in rows
        ]

    def workspace_blobs(self) -> set[str]:
        """sha256 of every file stored in the workspace's own blob store (for ``workspace check``)."""
        q = (
            select(t.data_files.c.sha256)
            .join(t.data_versions, t.data_versions.c.id == t.data_files.c.version_id)
            .where(t.data_versions.c.stored.is_(True), t.data_versions.c.datastore_kind == "workspace")
        )
        with self.db.read() as conn:
            return {s for s in conn.execute(q).scalars() if s}

    @staticmethod
    def _aliases(conn: Connection, name: str | None) -> dict[tuple[str, int], tuple[str, ...]]:
        """Aliases by (name, version), of ``name`` only when given."""
        q = select(t.data_aliases).order_by(t.data_aliases.c.alias)
        if name:
            q = q.where(t.data_aliases.c.name == name)
        out: dict[tuple[str, int], tuple[str, ...]] = {}
        for a in conn.execute(q):
            out[(a.name, a.version)] = (*out.get((a.name, a.version), ()), a.alias)
        return out


def _record(row: Any, aliases: tuple[str, ...], manifest: tuple[ManifestEntry, ...] = ()) -> DataVersion:
    return DataVersion(
        id=int(row.id),
        name=row.name,
        version=int(row.version),
        type=row.type,
        source=row.source,
        stored=bool(row.stored),
        datastore=row.datastore,
        datastore_kind=row.datastore_kind,
        datastore_config=json.loads(row.datastore_config or "{}"),
        digest=row.digest,
        size=int(row.size),
        file_count=int(row.file_count),
        created_at=float(row.created_at),
        description=row.description,
        tags=json.loads(row.tags or "{}"),
        archived=bool(row.archived),
        producer_run_id=row.producer_run_id,
        aliases=aliases,
        manifest=manifest,
    )
