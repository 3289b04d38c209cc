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


def _columns(rows: list[tuple[Any, ...]], names: tuple[str, ...], skip: int = 0) -> dict[str, list[Any]]:
    """Rows as one list per column (``names[i]`` is column i); the first ``skip`` columns are left out."""
    return {name: [r[i] for r in rows] for i, name in enumerate(names) if i >= skip}


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
        """Per key of a run, sorted: its latest record's ``kind``, ``latest`` value and whether that is
        ``numeric`` (chartable). Index seeks per key, whatever the number of points."""
        from mltrain.workspace.run_pages import run_keys_cte

        m = t.metrics
        run_keys = run_keys_cte([run_id])
        out = []
        with self.db.read() as conn:
            keys = sorted(conn.execute(select(run_keys.c.key).where(run_keys.c.key.is_not(None))).scalars())
            for key in keys:
                last = conn.execute(
                    select(m.c.kind, m.c.value, m.c.data)
                    .where(m.c.run_id == run_id, m.c.key == key)
                    .order_by(m.c.id.desc())
                    .limit(1)
                ).one()
                latest = last.value if last.data is None else json.loads(last.data)
                out.append({"key": key, "kind": last.kind, "numeric": last.value is not None, "latest": latest})
        return out

    def series(self, run_id: str, key: str, after_id: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The numeric scalars of one key, in logging order, as columns: ``step`` (None where not
        given), ``ts``, ``value``, and ``last_id`` (pass it as ``after_id`` to get only newer points)."""
        from mltrain.workspace.db import fetch_tuples

        m = t.metrics
        q = (
            select(m.c.id, m.c.step, m.c.ts, m.c.value)
            .where(m.c.run_id == run_id, m.c.key == key, m.c.value.is_not(None), m.c.id > after_id)
            .order_by(m.c.id)
        )
        if limit:
            q = q.limit(limit)
        with self.db.read() as conn:
            rows = fetch_tuples(conn, q)
        return {**_columns(rows, ("id", "step", "ts", "value"), skip=1), "last_id": rows[-1][0] if rows else after_id}

    def all_series(
        self, run_id: str, limit_per_key: int = 1_000_000, fields: tuple[str, ...] = ("step", "ts", "value")
    ) -> dict[str, Any]:
        """Every numeric series of a run, read in one snapshot: ``{"last_id", "count", "series":
        {key: {field: [...]}}}`` with ``fields`` of step, ts, value; ``last_id`` is the newest record
        read, so ``numeric_series(run_id, last_id)`` returns exactly what was stored since."""

        from mltrain.workspace.db import fetch_tuples

        m = t.metrics
        series: dict[str, Any] = {}
        count = 0
        from mltrain.workspace.run_pages import run_keys_cte

        run_keys = run_keys_cte([run_id])
        with self.db.read() as conn:
            # the run's keys and its newest record by index seeks, not by scanning its points
            keys = sorted(conn.execute(select(run_keys.c.key).where(run_keys.c.key.is_not(None))).scalars())
            newest = [
                conn.execute(
                    select(m.c.id).where(m.c.run_id == run_id, m.c.key == k).order_by(m.c.id.desc()).limit(1)
                ).scalar()
                for k in keys
            ]
            last = int(max(newest, default=0) or 0)
            for key in keys:
                q = (
                    select(*(m.c[f] for f in fields))
                    .where(m.c.run_id == run_id, m.c.key == key, m.c.value.is_not(None), m.c.id <= last)
                    .order_by(m.c.id)
                    .limit(limit_per_key)
                )
                rows = fetch_tuples(conn, q)
                if rows:
                    series[key] = _columns(rows, fields)
                    count += len(rows)
        return {"last_id": last, "count": count, "series": series}

    def numeric_series(self, run_id: str, after_id: int, limit: int = 100_000) -> dict[str, Any]:
        """The numeric scalars of a run stored after record ``after_id`` (at most ``limit``; for live
        updates), as columns per key: ``{"last_id", "count", "series": {key: {"id", "step", "ts",
        "value"}}}``; pass ``last_id`` as ``after_id`` next time."""
        from mltrain.workspace.db import fetch_tuples

        m = t.metrics
        q = (
            select(m.c.id, m.c.key, m.c.step, m.c.ts, m.c.value)
            .where(m.c.run_id == run_id, m.c.id > after_id, m.c.value.is_not(None))
            .order_by(m.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = fetch_tuples(conn, q)
        series: dict[str, dict[str, list[Any]]] = {}
        for rid, key, step, ts, value in rows:
            col = series.get(key)
            if col is None:
                col = series[key] = {"id": [], "step": [], "ts": [], "value": []}
            col["id"].append(rid)
            col["step"].append(step)
            col["ts"].append(ts)
            col["value"].append(value)
        return {"last_id": rows[-1][0] if rows else after_id, "count": len(rows), "series": series}
