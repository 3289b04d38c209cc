"""Metrics of runs: scalars (numbers or strings), lists, table rows and whole tables.

Records arrive in batches from the driver, which tails ``.mltrain/metrics.jsonl`` (the format the
in-script API writes: ``{"t": ts, "k": name, "v": value[, "s": step][, "type": kind]}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, bulk_insert

METRIC_KINDS = ("scalar", "list", "row", "table")


COLUMNS = ("run_id", "key", "kind", "value", "data", "step", "ts")


def to_row(run_id: str, rec: dict[str, Any]) -> tuple[Any, ...]:
    """The metrics-table row (in COLUMNS order) of one record of the in-script API."""
    value = rec.get("v")
    kind = rec.get("type", "scalar")
    if kind == "scalar" and value.__class__ in (float, int):
        return (run_id, rec.get("k", ""), kind, value, None, rec.get("s"), rec.get("t", 0.0))
    return (run_id, str(rec.get("k", "")), kind, None, json.dumps(value), rec.get("s"), float(rec.get("t", 0.0)))


def _value(row: dict[str, Any]) -> Any:
    return row["value"] if row["data"] is None else json.loads(row["data"])


class MetricStore:
    """Metric records of one workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, run_id: str, records: Iterable[dict[str, Any]]) -> int:
        """Store metric records (kinds in METRIC_KINDS) in one transaction; return how many."""
        rows = [to_row(run_id, r) for r in records]
        if rows:
            with self.db.write() as conn:
                bulk_insert(conn, t.metrics, COLUMNS, rows)
        return len(rows)

    def replace(self, run_id: str, records: Iterable[dict[str, Any]]) -> int:
        """Replace every metric of a run by ``records`` in one transaction (used by recovery)."""
        rows = [to_row(run_id, r) for r in records]
        with self.db.write() as conn:
            conn.execute(t.metrics.delete().where(t.metrics.c.run_id == run_id))
            bulk_insert(conn, t.metrics, COLUMNS, rows)
        return len(rows)

    def history(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every record of a run (optionally of one key), in logging order."""
        q = select(
            t.metrics.c.key, t.metrics.c.kind, t.metrics.c.value, t.metrics.c.data, t.metrics.c.step, t.metrics.c.ts
        ).where(t.metrics.c.run_id == run_id)
        if key is not None:
            q = q.where(t.metrics.c.key == key)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q.order_by(t.metrics.c.id))]
        return [
            {"key": r["key"], "kind": r["kind"], "value": _value(r), "step": r["step"], "ts": r["ts"]} for r in rows
        ]

    def count(self, run_id: str) -> int:
        from sqlalchemy import func

        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).where(t.metrics.c.run_id == run_id)).scalar() or 0)

    def summary(self, run_id: str) -> dict[str, Any]:
        """Per key: the last scalar, the last list or table, or all rows of a row-logged table."""
        out: dict[str, Any] = {}
        for rec in self.history(run_id):
            key, kind, value = rec["key"], rec["kind"], rec["value"]
            if kind == "row":
                table = out.setdefault(key, {})
                for col, v in value.items():
                    table.setdefault(col, []).append(v)
            else:
                out[key] = value
        return out

    def keys(self, run_id: str) -> list[dict[str, Any]]:
        """Per key of a run: its kind, how many records, how many of them numeric (chartable)."""
        from sqlalchemy import func

        m = t.metrics
        q = (
            select(m.c.key, m.c.kind, func.count().label("count"), func.count(m.c.value).label("numeric"))
            .where(m.c.run_id == run_id)
            .group_by(m.c.key, m.c.kind)
            .order_by(m.c.key)
        )
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def series(self, run_id: str, key: str, after_id: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The numeric scalars of one key, in logging order, as columns: ``step`` (None where not
        given), ``ts``, ``value``, and ``last_id`` (pass it as ``after_id`` to get only newer points)."""
        m = t.metrics
        q = (
            select(m.c.id, m.c.step, m.c.ts, m.c.value)
            .where(m.c.run_id == run_id, m.c.key == key, m.c.value.is_not(None), m.c.id > after_id)
            .order_by(m.c.id)
        )
        if limit:
            q = q.limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        return {
            "step": [r[1] for r in rows],
            "ts": [r[2] for r in rows],
            "value": [r[3] for r in rows],
            "last_id": rows[-1][0] if rows else after_id,
        }

    def numeric_since(
        self, run_id: str, after_id: int, limit: int = 100_000
    ) -> list[tuple[int, str, Any, float, float]]:
        """Numeric scalars of a run stored after record ``after_id``: (id, key, step, ts, value), in order."""
        m = t.metrics
        q = (
            select(m.c.id, m.c.key, m.c.step, m.c.ts, m.c.value)
            .where(m.c.run_id == run_id, m.c.id > after_id, m.c.value.is_not(None))
            .order_by(m.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [tuple(r) for r in conn.execute(q)]  # type: ignore[misc]

    def last_id(self, run_id: str) -> int:
        """The id of the run's latest stored record (0 if none): a watermark for ``numeric_since``."""
        from sqlalchemy import func

        with self.db.read() as conn:
            return int(conn.execute(select(func.max(t.metrics.c.id)).where(t.metrics.c.run_id == run_id)).scalar() or 0)

    def all_keys(self, limit: int = 1000) -> list[str]:
        """Metric keys of every run, sorted (what runs can be sorted and filtered by)."""
        m = t.metrics
        q = select(m.c.key).distinct().order_by(m.c.key).limit(limit)
        with self.db.read() as conn:
            return [str(k) for k in conn.execute(q).scalars()]
