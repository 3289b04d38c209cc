"""Metrics of runs: scalars (numbers or strings), lists, table rows, whole tables and images.

Records arrive in batches from the driver, which tails ``.mltrain/metrics.jsonl`` (the format the
in-script API writes: ``{"t": ts, "k": name, "v": value[, "s": step][, "type": kind][, "r": run]}``).
On SQLite a batch of JSON lines is decoded and inserted by one SQL statement (``add_jsonl``): no
per-record Python work, the bulk path that keeps up with a script logging in a tight loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, bulk_insert
from mltrain.workspace.records import Record, record

METRIC_KINDS = ("scalar", "list", "row", "table", "image")


@record
class MetricValue(Record):
    """One logged record of a metric: its key, kind (scalar, list, row, table, image), value, step
    (None when logged without one) and time."""

    key: str
    kind: str
    value: Any
    step: int | None
    ts: float


@record
class SeriesStats(Record):
    """A scalar series of a run: how many values, the last, and the lowest and highest number (None
    for a series of strings)."""

    key: str
    count: int
    last: Any
    min: float | None
    max: float | None


@record
class MetricKey(Record):
    """A metric key of a run: its latest record's kind and value, and whether that is a number (chartable)."""

    key: str
    kind: str
    numeric: bool
    latest: Any


COLUMNS = ("run_id", "key", "kind", "value", "data", "step", "ts")

# One statement decodes a JSON array of records and inserts the metric ones (?1 run, ?2 parent, ?3
# the array): numbers go to ``value``, anything else as JSON text to ``data``, as to_row does. The
# records are rendered once into a materialised table (json_each renders an element anew on every
# use), so each field's extraction parses a cached record.
_RECORDS = "WITH j AS MATERIALIZED (SELECT value AS v FROM json_each(?3) WHERE type = 'object')"
_NUMERIC = "json_type(j.v, '$.v') IN ('integer', 'real') AND j.v ->> 'type' IS NULL"
_JSONL_INSERT = f"""{_RECORDS}
INSERT INTO metrics (run_id, key, kind, value, data, step, ts)
SELECT CASE WHEN ?2 IS NOT NULL AND j.v ->> 'r' = ?2 THEN ?2 ELSE ?1 END,
       coalesce(j.v ->> 'k', ''),
       coalesce(j.v ->> 'type', 'scalar'),
       CASE WHEN {_NUMERIC} THEN j.v ->> 'v' END,
       CASE WHEN {_NUMERIC} THEN NULL ELSE coalesce(j.v -> 'v', 'null') END,
       j.v ->> 's',
       coalesce(j.v ->> 't', 0.0)
FROM j
WHERE coalesce(j.v ->> 'type', 'scalar') IN ({", ".join(f"'{k}'" for k in METRIC_KINDS)})
"""

# The same for a batch of plain scalars (no "type", no "r": what Run.log writes), with less work per row.
_JSONL_INSERT_SCALARS = f"""{_RECORDS}
INSERT INTO metrics (run_id, key, kind, value, data, step, ts)
SELECT ?1, coalesce(j.v ->> 'k', ''), 'scalar',
       CASE WHEN json_type(j.v, '$.v') IN ('integer', 'real') THEN j.v ->> 'v' END,
       CASE WHEN json_type(j.v, '$.v') IN ('integer', 'real') THEN NULL ELSE coalesce(j.v -> 'v', 'null') END,
       j.v ->> 's',
       coalesce(j.v ->> 't', 0.0)
FROM j
"""  # ?2 (the parent) is not used; ?3 makes it a three-parameter statement all the same


# Textual (cheap to prepare in a short-lived process), portable SQL of summary(): the keys of a
# run by a loose index scan of (run_id, key), then per key its first id and last record.
_KEYS = text(
    'WITH RECURSIVE k(name) AS (SELECT min("key") FROM metrics WHERE run_id = :run '
    'UNION ALL SELECT (SELECT min("key") FROM metrics WHERE run_id = :run AND "key" > k.name) '
    "FROM k WHERE k.name IS NOT NULL) SELECT name FROM k"
)
_LAST = text('SELECT kind, value, data FROM metrics WHERE run_id = :run AND "key" = :key ORDER BY id DESC LIMIT 1')
_FIRST = text('SELECT min(id) FROM metrics WHERE run_id = :run AND "key" = :key')
_ROWS = text("SELECT data FROM metrics WHERE run_id = :run AND \"key\" = :key AND kind = 'row' ORDER BY id")


def decode_lines(lines: list[bytes]) -> list[Any]:
    """Decode JSON lines: all at once when they are well formed (fast), else one by one (an
    unreadable line is skipped with a note on stderr)."""
    import sys

    lines = [raw for raw in lines if raw.strip()]
    if not lines:
        return []
    try:
        return list(json.loads(b"[" + b",".join(lines) + b"]"))
    except ValueError:
        pass
    out = []
    for raw in lines:
        try:
            out.append(json.loads(raw))
        except ValueError:
            print(f"mltrain: skipped an unreadable metric record: {raw[:200]!r}", file=sys.stderr)
    return out


def to_row(run_id: str, rec: dict[str, Any]) -> tuple[Any, ...]:
    """The metrics-table row (in COLUMNS order) of one record of the in-script API."""
    value = rec.get("v")
    kind = rec.get("type", "scalar")
    if kind == "scalar" and value.__class__ in (float, int):
        return (run_id, rec.get("k", ""), kind, value, None, rec.get("s"), rec.get("t", 0.0))
    return (run_id, str(rec.get("k", "")), kind, None, json.dumps(value), rec.get("s"), float(rec.get("t", 0.0)))


def _value(value: Any, data: str | None) -> Any:
    """A stored metric's value: the number, else its JSON decoded."""
    return value if data is None else json.loads(data)


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

    def add_jsonl(self, run_id: str, lines: bytes, parent_run_id: str | None = None) -> int:
        """Store the metric records among complete JSON lines (other kinds are skipped) in one
        transaction; a record whose ``"r"`` is ``parent_run_id`` goes to the parent. Return how many."""
        body = lines.strip()
        if not body:
            return 0
        if self.db.is_sqlite:
            batch = b"[" + body.replace(b"\r", b"").replace(b"\n\n", b"\n").replace(b"\n", b",") + b"]"
            try:
                text = batch.decode("utf-8")
                plain = b'"type":' not in body and b'"r":' not in body
                with self.db.bulk_write() as conn:
                    sql = _JSONL_INSERT_SCALARS if plain else _JSONL_INSERT
                    return int(conn.exec_driver_sql(sql, (run_id, parent_run_id, text)).rowcount)
            except (OperationalError, UnicodeDecodeError):
                pass  # NaN/Infinity or a damaged line: decode record by record below
        records = [r for r in decode_lines(body.split(b"\n")) if isinstance(r, dict)]
        rows = [
            to_row(parent_run_id if parent_run_id and r.get("r") == parent_run_id else run_id, r)
            for r in records
            if r.get("type", "scalar") in METRIC_KINDS
        ]
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

    def history(self, run_id: str, key: str | None = None) -> list[MetricValue]:
        """Every record of a run (optionally of one key), in logging order."""
        q = select(
            t.metrics.c.key, t.metrics.c.kind, t.metrics.c.value, t.metrics.c.data, t.metrics.c.step, t.metrics.c.ts
        ).where(t.metrics.c.run_id == run_id)
        if key is not None:
            q = q.where(t.metrics.c.key == key)
        with self.db.read() as conn:
            rows = conn.execute(q.order_by(t.metrics.c.id)).all()
        return [MetricValue(key, kind, _value(value, data), step, ts) for key, kind, value, data, step, ts in rows]

    def count(self, run_id: str) -> int:
        from sqlalchemy import func

        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).where(t.metrics.c.run_id == run_id)).scalar() or 0)

    def summary(self, run_id: str) -> dict[str, Any]:
        """Per key, in the order first logged: the last scalar, list, table or image, or all rows
        of a row-logged table as {column: [...]}. Index seeks per key (a loose index scan for the
        keys), so a million-value series costs no more than a short one."""
        entries: list[tuple[int, str, Any]] = []
        with self.db.read() as conn:
            keys = [k for (k,) in conn.execute(_KEYS, {"run": run_id}) if k is not None]
            for key in keys:
                params = {"run": run_id, "key": key}
                last = conn.execute(_LAST, params).one()
                first = conn.execute(_FIRST, params).scalar_one()
                if last.kind != "row":
                    entries.append((first, key, _value(last.value, last.data)))
                    continue
                table: dict[str, list[Any]] = {}
                for (data,) in conn.execute(_ROWS, params):
                    for col, v in (json.loads(data) or {}).items():
                        table.setdefault(col, []).append(v)
                entries.append((first, key, table))
        return {key: value for _, key, value in sorted(entries, key=lambda e: e[0])}

    def series_stats(self, run_id: str) -> list[SeriesStats]:
        """Every scalar series of a run, in the order first logged: key, count, last, min, max
        (min/max over its numbers; None for a series of strings)."""
        m = t.metrics.c
        agg = (
            select(
                m.key,
                func.count().label("count"),
                func.min(m.value).label("min"),
                func.max(m.value).label("max"),
                func.min(m.id).label("first_id"),
                func.max(m.id).label("last_id"),
            )
            .where(m.run_id == run_id, m.kind == "scalar")
            .group_by(m.key)
            .subquery()
        )
        q = select(agg, m.value, m.data).join(t.metrics, m.id == agg.c.last_id).order_by(agg.c.first_id)
        with self.db.read() as conn:
            return [SeriesStats(r.key, int(r.count), _value(r.value, r.data), r.min, r.max) for r in conn.execute(q)]

    def sampled(self, run_id: str, key: str, points: int = 24) -> list[float]:
        """A numeric series cut into ``points`` buckets in logging order, the mean of each (for a
        sparkline): the database does the work, whatever the series' length."""
        m = t.metrics.c
        numbered = (
            select(m.value, func.ntile(points).over(order_by=m.id).label("bucket"))
            .where(m.run_id == run_id, m.key == key, m.kind == "scalar", m.value.is_not(None))
            .subquery()
        )
        q = select(func.avg(numbered.c.value)).group_by(numbered.c.bucket).order_by(numbered.c.bucket)
        with self.db.read() as conn:
            return [float(v) for (v,) in conn.execute(q)]

    def keys(self, run_id: str) -> list[MetricKey]:
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
                out.append(MetricKey(key, last.kind, last.value is not None, _value(last.value, last.data)))
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

    def downsampled(self, run_id: str, key: str, points: int, after_id: int = 0) -> dict[str, Any]:
        """The numeric scalars of one key stored after record ``after_id`` in at most ``points`` (≥ 4)
        points: all of them when they fit (``downsampled`` false), else the series cut into ``points //
        4`` equal ranges of record id, each given by its first, last, lowest and highest point in logging
        order, so a chart of it keeps the series' shape, its extremes and its ends. Read range by range
        through the (run_id, key) index: memory stays bounded whatever the series' length. Columns as
        :meth:`series`."""
        from sqlalchemy import bindparam, case

        from mltrain.workspace.db import fetch_tuples

        m = t.metrics.c
        names = ("id", "step", "ts", "value")
        of_key = (m.run_id == run_id, m.key == key, m.value.is_not(None))
        where = (*of_key, m.id > after_id)
        with self.db.read() as conn:
            rows = fetch_tuples(
                conn, select(m.id, m.step, m.ts, m.value).where(*where).order_by(m.id).limit(points + 1)
            )
            if len(rows) <= points:
                last_id = rows[-1][0] if rows else after_id
                return {**_columns(rows, names, skip=1), "last_id": last_id, "downsampled": False}
            first = rows[0][0]
            last = conn.execute(select(m.id).where(*where).order_by(m.id.desc()).limit(1)).scalar_one()
            in_range = (*of_key, m.id >= bindparam("a"), m.id < bindparam("z"))  # one lower bound: SQLite uses it
            extremes = select(func.min(m.id), func.max(m.id), func.min(m.value), func.max(m.value)).where(*in_range)
            where_extremes = select(  # the first record of each extreme
                func.min(case((m.value == bindparam("lo"), m.id))), func.min(case((m.value == bindparam("hi"), m.id)))
            ).where(*in_range)
            buckets, span = points // 4, last - first + 1
            ids: set[int] = set()
            for k in range(buckets):
                bounds = {"a": first + k * span // buckets, "z": first + (k + 1) * span // buckets}
                start, end, lo, hi = conn.execute(extremes, bounds).one()
                if start is None:
                    continue  # no point of this key in that range of ids
                ids.update((start, end, *conn.execute(where_extremes, {**bounds, "lo": lo, "hi": hi}).one()))
            rows = []
            chosen = sorted(ids)
            for i in range(0, len(chosen), 500):
                q = select(m.id, m.step, m.ts, m.value).where(m.id.in_(chosen[i : i + 500])).order_by(m.id)
                rows += [tuple(r) for r in conn.execute(q)]
        return {**_columns(rows, names, skip=1), "last_id": last, "downsampled": True}

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


def last_value(run_id_column: Any, key: str) -> Any:
    """A correlated SQL expression: the last numeric scalar logged as ``key`` by the run whose id
    is ``run_id_column`` (uses the (run_id, key) index)."""
    m = t.metrics.alias("lv")
    return (
        select(m.c.value)
        .where(m.c.run_id == run_id_column, m.c.key == key, m.c.kind == "scalar")
        .order_by(m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def last_data(run_id_column: Any, key: str) -> Any:
    """Like :func:`last_value`, for the JSON of a non-numeric scalar (a string's JSON text)."""
    m = t.metrics.alias("ld")
    return (
        select(m.c.data)
        .where(m.c.run_id == run_id_column, m.c.key == key, m.c.kind == "scalar")
        .order_by(m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
