"""One page of runs for a dashboard: filtered, sorted (by a metric too) and counted in SQL.

A metric's value for a run is its latest numeric scalar of that key; every query seeks the
``(run_id, key)`` index of ``metrics`` instead of scanning a run's points, so a page of a 10,000-run
workspace stays fast however long the runs' series are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, select

from mltrain.workspace import tables as t
from mltrain.workspace.db import Database

OPERATORS = (">=", "<=", "!=", ">", "<", "=")
SORT_COLUMNS = ("created_at", "started_at", "ended_at", "status", "id", "experiment")


@dataclass(frozen=True)
class MetricFilter:
    """``key op value``: the run's latest numeric value of ``key`` compared with ``value``."""

    key: str
    op: str
    value: float


@dataclass(frozen=True)
class RunQuery:
    """What a page of runs holds. ``sort`` is a column of SORT_COLUMNS or ``metric:KEY``.

    Without ``parent`` only top-level runs are listed (a sweep is one row) unless ``flat``."""

    experiment: str | None = None
    status: str | None = None
    tag: tuple[str, str | None] | None = None  # (key, value or None: any value)
    metric: MetricFilter | None = None
    parent: str | None = None
    flat: bool = False
    sort: str = "created_at"
    descending: bool = True
    offset: int = 0
    limit: int = 50


def latest_metric(key: str) -> Any:
    """A scalar sub-query: the latest numeric value of metric ``key`` of the outer query's run."""
    m = t.metrics.alias("lm")
    return (
        select(m.c.value)
        .where(m.c.run_id == t.runs.c.id, m.c.key == key, m.c.value.is_not(None))
        .order_by(m.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _where(q: RunQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q.experiment:
        conds.append(t.experiments.c.name == q.experiment)
    if q.status:
        conds.append(func.lower(t.runs.c.status) == q.status.lower())
    if q.parent:
        conds.append(t.runs.c.parent_run_id == q.parent)
    elif not q.flat:
        conds.append(t.runs.c.parent_run_id.is_(None))
    if q.tag:
        key, value = q.tag
        cond = and_(t.tags.c.run_id == t.runs.c.id, t.tags.c.key == key)
        if value is not None:
            cond = and_(cond, t.tags.c.value == value)
        conds.append(exists(select(t.tags.c.run_id).where(cond)))
    if q.metric:
        col = latest_metric(q.metric.key)
        ops = {
            ">": col > q.metric.value,
            ">=": col >= q.metric.value,
            "<": col < q.metric.value,
            "<=": col <= q.metric.value,
            "=": col == q.metric.value,
            "!=": col != q.metric.value,
        }
        conds.append(ops[q.metric.op])
    return conds


def page_runs(db: Database, q: RunQuery) -> tuple[list[dict[str, Any]], int]:
    """The runs of page ``q`` (each with ``children``: how many runs it is the parent of) and how
    many runs match in all."""
    cols = [
        t.runs.c.id,
        t.runs.c.parent_run_id,
        t.runs.c.status,
        t.runs.c.created_at,
        t.runs.c.started_at,
        t.runs.c.ended_at,
        t.runs.c.script,
        t.runs.c.compute,
        t.runs.c.env_name,
        t.runs.c.error,
        t.experiments.c.name.label("experiment"),
    ]
    joined = t.runs.join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
    conds = _where(q)
    if q.sort.startswith("metric:"):
        key = latest_metric(q.sort.removeprefix("metric:"))
        # runs without the metric come last in both directions
        order = [key.is_(None), key.desc() if q.descending else key.asc()]
        cols.append(key.label("sort_value"))
    else:
        col = t.experiments.c.name if q.sort == "experiment" else t.runs.c[q.sort]
        order = [col.desc() if q.descending else col.asc()]
    order.append(t.runs.c.id.desc() if q.descending else t.runs.c.id.asc())
    stmt = select(*cols).select_from(joined).where(*conds).order_by(*order).offset(q.offset).limit(q.limit)
    count = select(func.count()).select_from(joined).where(*conds)
    with db.read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        total = int(conn.execute(count).scalar() or 0)
        # child counts of this page's runs only (a correlated count would run for every sorted row)
        ids = [r["id"] for r in rows]
        counts = (
            conn.execute(
                select(t.runs.c.parent_run_id, func.count())
                .where(t.runs.c.parent_run_id.in_(ids))
                .group_by(t.runs.c.parent_run_id)
            ).all()
            if ids
            else []
        )
    children = dict(counts)  # type: ignore[arg-type]
    for r in rows:
        r["children"] = int(children.get(r["id"], 0))
    return rows, total


def run_keys_cte(run_ids: Any) -> Any:
    """A recursive CTE of (run_id, key): every metric key of the runs ``run_ids`` (a list or a
    SELECT of ids), found by one index seek per key ("loose index scan"), so its cost does not grow
    with the number of points a run logged."""
    a, b = t.metrics.alias("ka"), t.metrics.alias("kb")
    first = select(
        t.runs.c.id.label("run_id"),
        select(func.min(a.c.key)).where(a.c.run_id == t.runs.c.id).scalar_subquery().label("key"),
    ).where(t.runs.c.id.in_(run_ids))
    keys = first.cte("run_keys", recursive=True)
    following = select(func.min(b.c.key)).where(b.c.run_id == keys.c.run_id, b.c.key > keys.c.key)
    return keys.union_all(select(keys.c.run_id, following.scalar_subquery()).where(keys.c.key.is_not(None)))


def latest_scalars(db: Database, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per run: the latest scalar (number or string) of each of its keys logged as scalars."""
    if not run_ids:
        return {}
    m, c = t.metrics, t.metrics.alias("kc")
    keys = run_keys_cte(run_ids)
    last = (
        select(c.c.id)
        .where(c.c.run_id == keys.c.run_id, c.c.key == keys.c.key)
        .order_by(c.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    stmt = select(m.c.run_id, m.c.key, m.c.value, m.c.data).where(
        m.c.id.in_(select(last).where(keys.c.key.is_not(None))), m.c.kind == "scalar"
    )
    out: dict[str, dict[str, Any]] = {r: {} for r in run_ids}
    with db.read() as conn:
        for r in conn.execute(stmt):
            out[r.run_id][r.key] = r.value if r.data is None else json.loads(r.data)
    return out


def recent_keys(db: Database, runs: int = 1000, limit: int = 1000) -> list[str]:
    """Metric keys of the ``runs`` newest runs, sorted (what runs can be sorted and filtered by)."""
    newest = select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(runs)
    keys = run_keys_cte(newest)
    stmt = select(keys.c.key).where(keys.c.key.is_not(None)).distinct().order_by(keys.c.key).limit(limit)
    with db.read() as conn:
        return [str(k) for k in conn.execute(stmt).scalars()]


def tags_of(db: Database, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """Per run: its tags."""
    out: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    if run_ids:
        with db.read() as conn:
            for r in conn.execute(select(t.tags).where(t.tags.c.run_id.in_(run_ids))):
                out[r.run_id][r.key] = r.value
    return out
