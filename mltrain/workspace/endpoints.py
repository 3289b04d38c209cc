"""Endpoints: a served model version, where its server runs and how it answers (``endpoints`` table).

One store owns the table and returns frozen records. A record keeps the state last recorded
(Creating, Running, Failed); the live state is the deploy target's to tell
(:func:`mltrain.deploy.service.endpoint_status`). Keys are recorded hashed only.
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import Any, Protocol

from sqlalchemy import delete, select, update

from mltrain.errors import NotFoundError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, now, upsert
from mltrain.workspace.records import Record, record


class _HasDb(Protocol):  # a Workspace (not imported: the workspace package imports this module)
    db: Database


CREATING = "Creating"
RUNNING = "Running"
UNHEALTHY = "Unhealthy"  # live only: the process (container) runs but /health/ready does not answer 200
FAILED = "Failed"


@record
class Endpoint(Record):
    """An endpoint as recorded: its model version, target, state, address, server and resources."""

    JSON_COLUMNS = {"options": dict}
    BOOL_COLUMNS = ("auth",)

    name: str
    model_name: str
    model_version: int
    target: str  # local | docker
    state: str  # as last recorded: Creating | Running | Failed
    created_at: float
    updated_at: float
    uri: str | None = None  # base URL of the server, e.g. http://127.0.0.1:8123
    host: str | None = None
    port: int | None = None
    folder: str | None = None  # <workspace>/endpoints/<name>: config, model, keys, log
    machine: str | None = None  # host name of the machine that started the server
    pid: int | None = None  # local: the server's supervisor process (a process group leader)
    pid_start: str | None = None  # its start token, guards against PID reuse
    container_id: str | None = None  # docker: the container
    base_url: str | None = None  # docker: the engine address
    env_hash: str | None = None  # the serving environment
    env_location: str | None = None  # its venv folder or image tag
    auth: bool = True
    primary_key_sha256: str | None = None  # keys are stored hashed only
    secondary_key_sha256: str | None = None
    keys_updated_at: float | None = None
    cpu: float | None = None
    memory_gb: float | None = None
    workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the deploy options
    error: str | None = None

    @property
    def model(self) -> str:
        """``NAME:VERSION`` of the model it serves."""
        return f"{self.model_name}:{self.model_version}"

    def key_digest(self, slot: str) -> str | None:
        """The sha256 of the key in ``slot`` (primary, secondary), None when it has none."""
        return self.primary_key_sha256 if slot == "primary" else self.secondary_key_sha256


class EndpointStore:
    """The endpoint records of one workspace (made from its database, or from the workspace)."""

    def __init__(self, db: Database | _HasDb) -> None:
        self.db: Database = db if isinstance(db, Database) else db.db

    def find(self, name: str) -> Endpoint | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.name == name)).first()
        return Endpoint.from_row(row) if row is not None else None

    def get(self, name: str) -> Endpoint:
        """The record of ``name``; NotFoundError naming the endpoints there are."""
        rec = self.find(name)
        if rec is None:
            names = [r.name for r in self.list()]
            known = f"endpoints here: {', '.join(names)}" if names else "this workspace has no endpoints"
            raise NotFoundError(
                f"no endpoint {name!r} in this workspace",
                hint=f"{known}; `mltrain endpoints list` shows them",
            )
        return rec

    def list(self) -> list[Endpoint]:
        """Every endpoint, by name."""
        with self.db.read() as conn:
            rows = conn.execute(select(t.endpoints).order_by(t.endpoints.c.name)).all()
        return [Endpoint.from_row(r) for r in rows]

    def save(self, name: str, **values: Any) -> None:
        """Create the record of ``name`` with ``values`` (every required column), or overwrite those
        columns of the existing one; atomic against concurrent writers."""
        values = self._encode(values)
        ts = now()
        with self.db.write() as conn:
            upsert(conn, t.endpoints, {"name": name}, {"created_at": ts, "updated_at": ts, **values},
                   {"updated_at": ts, **values})  # fmt: skip

    def update(self, name: str, **values: Any) -> None:
        """Set ``values`` on the existing record of ``name``."""
        with self.db.write() as conn:
            conn.execute(
                update(t.endpoints).where(t.endpoints.c.name == name).values(updated_at=now(), **self._encode(values))
            )

    def delete(self, name: str) -> None:
        with self.db.write() as conn:
            conn.execute(delete(t.endpoints).where(t.endpoints.c.name == name))

    @staticmethod
    def _encode(values: dict[str, Any]) -> dict[str, Any]:
        if "options" in values and not isinstance(values["options"], str):
            return {**values, "options": json.dumps(values["options"], sort_keys=True)}
        return values
