"""One page of runs for a dashboard: filtered, sorted (by a metric, an argument or a tag too) and
counted in SQL.

A metric's value for a run is its latest numeric scalar of that key; every query seeks the
``(run_id, key)`` index of ``metrics`` instead of scanning a run's points, so a page of a 10,000-run
workspace stays fast however long the runs' series are. An argument's value is read from the run's
config (``job.arguments``) by the database's JSON functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, cast, exists, func, select
from sqlalchemy.exc import DataError

from mltrain.errors import WorkspaceError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database

OPERATORS = (">=", "<=", "!=", ">", "<", "=")
SORT_COLUMNS = ("created_at", "started_at", "ended_at", "status", "id", "experiment")
SORT_PREFIXES = ("metric:", "arg:", "tag:")  # + a metric, argument or tag name


@dataclass(frozen=True)
class MetricFilter:
    """``key op value``: the run's latest numeric value of ``key`` compared with ``value``."""

    key: str
    op: str
    value: float


@dataclass(frozen=True)
class RunQuery:
    """What a page of runs holds. ``sort`` is a column of SORT_COLUMNS, ``metric:KEY``, ``arg:NAME``
    (an argument, ``a.b`` for a nested one) or ``tag:KEY``.

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


def _decoded(text: str | None) -> Any:
    """A JSON column's value; None when it is empty or damaged (a page lists the run all the same)."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def argument_value(dialect: str, name: str) -> Any:
    """An SQL expression: the run's argument ``name`` (``job.arguments`` of its config; ``a.b`` for
    ``{"a": {"b": ...}}``) as a JSON value, NULL when it has none. Numbers sort before strings."""
    parts = ("job", "arguments", *name.split("."))
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(t.runs.c.config, JSONB)[parts]
    path = "$" + "".join('."' + p + '"' for p in parts)  # names holding '"' are refused by the caller
    config = t.runs.c.config  # a damaged one has no value (json_valid costs next to nothing)
    return case((func.json_valid(config) == 1, func.json_extract(config, path)), else_=None)


def tag_value(key: str) -> Any:
    """A scalar sub-query: the value of the outer query's run's tag ``key``."""
    return select(t.tags.c.value).where(t.tags.c.run_id == t.runs.c.id, t.tags.c.key == key).scalar_subquery()


def _sort_value(dialect: str, sort: str) -> Any:
    kind, _, name = sort.partition(":")
    if kind == "metric":
        return latest_metric(name)
    if kind == "arg":
        return argument_value(dialect, name)
    return tag_value(name)


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
    """The runs of page ``q`` (each with ``children``: how many runs it is the parent of, and its
    ``config`` and ``arguments`` decoded) and how many runs match in all."""
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
    if q.sort.startswith(SORT_PREFIXES):
        key = _sort_value(db.engine.dialect.name, q.sort)
        # runs without the value come last in both directions (one term: the value is computed once a row)
        order = [(key.desc() if q.descending else key.asc()).nulls_last()]
    else:
        col = t.experiments.c.name if q.sort == "experiment" else t.runs.c[q.sort]
        order = [col.desc() if q.descending else col.asc()]
    order.append(t.runs.c.id.desc() if q.descending else t.runs.c.id.asc())
    stmt = select(*cols).select_from(joined).where(*conds).order_by(*order).offset(q.offset).limit(q.limit)
    count = select(func.count()).select_from(joined).where(*conds)
    with db.read() as conn:
        try:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        except DataError as exc:  # PostgreSQL: a config that is not JSON, read to sort by an argument
            raise WorkspaceError(
                f"cannot sort by {q.sort}: a run's recorded config is not valid JSON ({exc.orig})",
                hint="run `mltrain workspace check` to see what is affected",
            ) from None
        total = int(conn.execute(count).scalar() or 0)
        # child counts, configs and argv of this page's runs only (not carried through the sort)
        ids = [r["id"] for r in rows]
        configs = (
            {
                r.id: (r.config, r.arguments)
                for r in conn.execute(
                    select(t.runs.c.id, t.runs.c.config, t.runs.c.arguments).where(t.runs.c.id.in_(ids))
                )
            }
            if ids
            else {}
        )
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
        config, argv = configs[r["id"]]
        r["config"], r["arguments"] = _decoded(config), _decoded(argv)
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


def column_keys(db: Database, runs: int = 1000, configs: int = 200) -> dict[str, Any]:
    """What a runs table can show, sort and filter by, from the ``runs`` newest runs: their metric keys
    and tag keys, each with how many of those runs have it (most common first), and the decoded
    ``config`` and ``arguments`` of the ``configs`` newest (``runs``: where argument names are found)."""
    n = func.count().label("n")
    with db.read() as conn:
        newest = list(conn.execute(select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(runs)).scalars())
        keys = run_keys_cte(newest)
        metric_rows = conn.execute(
            select(keys.c.key, n).where(keys.c.key.is_not(None)).group_by(keys.c.key).order_by(n.desc(), keys.c.key)
        ).all()
        tag_rows = conn.execute(
            select(t.tags.c.key, n)
            .where(t.tags.c.run_id.in_(newest))
            .group_by(t.tags.c.key)
            .order_by(n.desc(), t.tags.c.key)
        ).all()
        recent = conn.execute(
            select(t.runs.c.config, t.runs.c.arguments).where(t.runs.c.id.in_(newest[:configs]))
        ).all()
    return {
        "metrics": [(str(k), int(c)) for k, c in metric_rows],
        "tags": [(str(k), int(c)) for k, c in tag_rows],
        "runs": [{"config": _decoded(c), "arguments": _decoded(a)} for c, a in recent],
    }


def env_runs(db: Database, env_hashes: list[str], recent: int = 5) -> dict[str, dict[str, Any]]:
    """Per environment hash: how many runs used it (``count``) and the newest ``recent`` of them
    (``runs``: id, experiment, status, created_at)."""
    out: dict[str, dict[str, Any]] = {h: {"count": 0, "runs": []} for h in env_hashes}
    if not env_hashes:
        return out
    counts = (
        select(t.runs.c.env_hash, func.count()).where(t.runs.c.env_hash.in_(env_hashes)).group_by(t.runs.c.env_hash)
    )
    rank = func.row_number().over(partition_by=t.runs.c.env_hash, order_by=t.runs.c.created_at.desc()).label("rank")
    ranked = (
        select(
            t.runs.c.env_hash,
            t.runs.c.id,
            t.runs.c.status,
            t.runs.c.created_at,
            t.experiments.c.name.label("experiment"),
            rank,
        )
        .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
        .where(t.runs.c.env_hash.in_(env_hashes))
        .subquery()
    )
    newest = select(ranked).where(ranked.c.rank <= recent).order_by(ranked.c.env_hash, ranked.c.rank)
    with db.read() as conn:
        for env_hash, count in conn.execute(counts):
            out[env_hash]["count"] = int(count)
        for r in conn.execute(newest):
            out[r.env_hash]["runs"].append(
                {"id": r.id, "experiment": r.experiment, "status": r.status, "created_at": r.created_at}
            )
    return out


def tags_of(db: Database, run_ids: list[str]) -> dict[str, dict[str, str]]:
    """Per run: its tags."""
    out: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    if run_ids:
        with db.read() as conn:
            for r in conn.execute(select(t.tags).where(t.tags.c.run_id.in_(run_ids))):
                out[r.run_id][r.key] = r.value
    return out
