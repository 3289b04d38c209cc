"""The workspace's endpoint records (``endpoints`` table, schema version 3)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mltrain.errors import NotFoundError

if TYPE_CHECKING:
    from mltrain.workspace import Workspace

CREATING = "Creating"
RUNNING = "Running"
UNHEALTHY = "Unhealthy"  # the process (container) runs but /health/ready does not answer 200
FAILED = "Failed"


def _row(row: Any) -> dict[str, Any]:
    rec = dict(row._mapping)
    rec["options"] = json.loads(rec["options"]) if rec.get("options") else {}
    rec["auth"] = bool(rec["auth"])
    return rec


class EndpointStore:
    """Endpoint records of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def find(self, name: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        from mltrain.workspace import tables as t

        with self.ws.db.read() as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.name == name)).first()
        return _row(row) if row is not None else None

    def get(self, name: str) -> dict[str, Any]:
        rec = self.find(name)
        if rec is None:
            names = [r["name"] for r in self.list()]
            known = f"endpoints here: {', '.join(names)}" if names else "this workspace has no endpoints"
            raise NotFoundError(
                f"no endpoint {name!r} in this workspace",
                hint=f"{known}; `mltrain endpoints list` shows them",
            )
        return rec

    def list(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from mltrain.workspace import tables as t

        with self.ws.db.read() as conn:
            rows = conn.execute(select(t.endpoints).order_by(t.endpoints.c.name)).all()
        return [_row(r) for r in rows]

    def save(self, name: str, **values: Any) -> None:
        """Create the record of ``name`` with ``values`` (every required column), or overwrite those
        columns of the existing one; atomic against concurrent writers."""
        from mltrain.workspace import tables as t
        from mltrain.workspace.db import now, upsert

        values = self._encode(values)
        ts = now()
        with self.ws.db.write() as conn:
            upsert(conn, t.endpoints, {"name": name}, {"created_at": ts, "updated_at": ts, **values},
                   {"updated_at": ts, **values})  # fmt: skip

    def update(self, name: str, **values: Any) -> None:
        """Set ``values`` on the existing record of ``name``."""
        from sqlalchemy import update

        from mltrain.workspace import tables as t
        from mltrain.workspace.db import now

        with self.ws.db.write() as conn:
            conn.execute(
                update(t.endpoints).where(t.endpoints.c.name == name).values(updated_at=now(), **self._encode(values))
            )

    @staticmethod
    def _encode(values: dict[str, Any]) -> dict[str, Any]:
        if "options" in values and not isinstance(values["options"], str):
            return {**values, "options": json.dumps(values["options"], sort_keys=True)}
        return values

    def delete(self, name: str) -> None:
        from sqlalchemy import delete

        from mltrain.workspace import tables as t

        with self.ws.db.write() as conn:
            conn.execute(delete(t.endpoints).where(t.endpoints.c.name == name))
