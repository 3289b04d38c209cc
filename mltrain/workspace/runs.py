"""Experiments and runs: records, status timeline, tags, artifacts, cancel requests, orphans.

Status moves ``Queued → Preparing → Running → Finalizing → Completed | Failed | Canceled``; a
terminal status is final: ``set_status`` on a finished run changes nothing and returns False, so
a late writer (a driver finishing after recovery declared it lost) cannot resurrect it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, or_, select, update

from mltrain.errors import NotFoundError
from mltrain.workspace import tables as t
from mltrain.workspace.db import Database, has_prefix, now, upsert
from mltrain.workspace.names import check_name
from mltrain.workspace.records import Record, record

if TYPE_CHECKING:
    from mltrain.workspace.run_pages import RunQuery

QUEUED, PREPARING, RUNNING, FINALIZING = "Queued", "Preparing", "Running", "Finalizing"
COMPLETED, FAILED, CANCELED = "Completed", "Failed", "Canceled"
ACTIVE = (QUEUED, PREPARING, RUNNING, FINALIZING)
TERMINAL = (COMPLETED, FAILED, CANCELED)
STATUSES = (*ACTIVE, *TERMINAL)

JSON_FIELDS = ("config", "overrides", "arguments", "job_ref", "problems")
HEARTBEAT_TIMEOUT_S = 600.0  # a run of another host without heartbeat for this long is lost


def new_run_id() -> str:
    """A sortable, readable run id: ``YYYYmmdd_HHMMSS_xxxxxx``."""
    return time.strftime("%Y%m%d_%H%M%S") + "_" + secrets.token_hex(3)


def _compare(expr: Any, op: str, value: Any) -> Any:
    """``expr OP value`` for the operators of ``runs list --where``."""
    if op in ("=", "=="):
        return expr == value
    if op == "!=":
        return expr != value
    if isinstance(value, str):
        raise ValueError(f"{op} compares numbers only")
    return {">": expr > value, ">=": expr >= value, "<": expr < value, "<=": expr <= value}[op]


@record
class RunInfo(Record):
    """A run as recorded: what ran where (script, arguments, config, compute, environment, snapshot),
    its status and times, its driver and job (for cancel and recovery), how it ended."""

    JSON_COLUMNS = dict.fromkeys(JSON_FIELDS)
    BOOL_COLUMNS = ("git_dirty", "cancel_requested")

    id: str
    experiment_id: int
    experiment: str
    status: str
    created_at: float
    parent_run_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    config: dict[str, Any] | None = None  # the resolved config
    overrides: list[str] | None = None  # the command line's
    script: str | None = None
    arguments: list[str] | None = None  # argv after the script
    compute: str | None = None
    env_name: str | None = None
    env_hash: str | None = None
    snapshot_id: str | None = None
    source_dir: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    exit_code: int | None = None
    error: str | None = None
    run_dir: str | None = None
    driver_host: str | None = None
    driver_pid: int | None = None
    driver_start: str | None = None  # process start token, guards against PID reuse
    child_pid: int | None = None
    child_start: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    job_ref: dict[str, Any] | None = None  # the started job's reference (mltrain.compute.base.JobRef)
    problems: list[str] | None = None  # what went wrong after the run ended

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@record
class Experiment(Record):
    name: str
    created_at: float
    runs: int  # how many runs it holds
    last_run_at: float | None


@record
class StatusChange(Record):
    """One step of a run's status timeline."""

    status: str
    ts: float
    detail: str | None = None


@record
class Artifact(Record):
    """A file of a run stored in the workspace (a blob by sha256)."""

    path: str
    sha256: str
    size: int


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v) if k in JSON_FIELDS and v is not None else v) for k, v in fields.items()}


class RunStore:
    """Runs and experiments of one workspace."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- experiments ---------------------------------------------------------------------------
    def experiment_id(self, conn: Connection, name: str) -> int:
        """The id of experiment ``name``, created on first use (inside the caller's transaction)."""
        upsert(conn, t.experiments, {"name": name}, {"created_at": now()})
        return int(conn.execute(select(t.experiments.c.id).where(t.experiments.c.name == name)).scalar_one())

    def experiments(self) -> list[Experiment]:
        """Every experiment with its run count and latest run time."""
        q = (
            select(
                t.experiments.c.name,
                t.experiments.c.created_at,
                func.count(t.runs.c.id).label("runs"),
                func.max(t.runs.c.created_at).label("last_run_at"),
            )
            .select_from(t.experiments.outerjoin(t.runs))
            .group_by(t.experiments.c.id)
            .order_by(t.experiments.c.name)
        )
        with self.db.read() as conn:
            return [Experiment.from_row(r) for r in conn.execute(q)]

    # -- runs ----------------------------------------------------------------------------------
    def create(self, run_id: str, experiment: str, **fields: Any) -> RunInfo:
        """Record a new run in status Queued (the experiment name is checked first)."""
        check_name(experiment, "experiment")
        values = _encode(fields)
        ts = now()
        with self.db.write() as conn:
            exp_id = self.experiment_id(conn, experiment)
            conn.execute(
                insert(t.runs).values(
                    id=run_id, experiment_id=exp_id, status=QUEUED, created_at=ts, heartbeat_at=ts, **values
                )
            )
            conn.execute(insert(t.run_status).values(run_id=run_id, status=QUEUED, ts=ts))
        return self.get(run_id)

    def set_status(self, run_id: str, status: str, detail: str | None = None, **fields: Any) -> bool:
        """Move a run to ``status`` (recording when); False if it had already finished."""
        assert status in STATUSES, status
        ts = now()
        values: dict[str, Any] = {"status": status, "heartbeat_at": ts, **_encode(fields)}
        if status == RUNNING:
            values.setdefault("started_at", ts)
        if status in TERMINAL:
            values.setdefault("ended_at", ts)
        with self.db.write() as conn:
            changed = conn.execute(
                update(t.runs).where(t.runs.c.id == run_id, t.runs.c.status.in_(ACTIVE)).values(**values)
            ).rowcount
            if changed:
                conn.execute(insert(t.run_status).values(run_id=run_id, status=status, ts=ts, detail=detail))
        return bool(changed)

    def update(self, run_id: str, **fields: Any) -> None:
        """Set fields of a run record (whatever its status)."""
        with self.db.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**_encode(fields)))

    def add_problems(self, run_id: str, problems: list[str]) -> list[str]:
        """Record what went wrong after the run ended (its status stays); every problem of the run."""
        with self.db.write() as conn:
            old = conn.execute(select(t.runs.c.problems).where(t.runs.c.id == run_id)).scalar()
            every = [*(json.loads(old) if old else []), *problems]
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**_encode({"problems": every})))
        return every

    def reopen(self, run_id: str, detail: str, **fields: Any) -> None:
        """Move a finished run back to Running (a resumed sweep; ``fields``: its new driver); its end
        time, error and cancel request are cleared."""
        ts = now()
        with self.db.write() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(
                    status=RUNNING,
                    ended_at=None,
                    error=None,
                    heartbeat_at=ts,
                    cancel_requested=False,
                    **_encode(fields),
                )
            )
            conn.execute(insert(t.run_status).values(run_id=run_id, status=RUNNING, ts=ts, detail=detail))

    def resolve_id(self, run_id: str) -> str:
        """The full id of ``run_id`` or of the one run whose id starts with it."""
        with self.db.read() as conn:
            if conn.execute(select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
                return run_id
            matches = conn.execute(select(t.runs.c.id).where(has_prefix(t.runs.c.id, run_id)).limit(3)).scalars().all()
        if len(matches) == 1:
            return str(matches[0])
        if not matches:
            raise NotFoundError(f"no run {run_id!r} in this workspace", hint="list runs with `mltrain runs list`")
        raise NotFoundError(f"{run_id!r} matches several runs ({', '.join(matches)}, ...)", hint="give more of the id")

    def get(self, run_id: str) -> RunInfo:
        """The run record (full id or unique prefix), with its experiment name."""
        run_id = self.resolve_id(run_id)
        q = (
            select(t.runs, t.experiments.c.name.label("experiment"))
            .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
            .where(t.runs.c.id == run_id)
        )
        with self.db.read() as conn:
            return RunInfo.from_row(conn.execute(q).one())

    def list(
        self,
        experiment: str | None = None,
        status: str | None = None,
        parent_run_id: str | None = None,
        limit: int | None = 50,
        where: Iterable[tuple[str, str, float | str]] = (),
        tags: dict[str, str] | None = None,
        sort: str | None = None,
        ascending: bool = False,
    ) -> list[RunInfo]:
        """Runs, newest first; ``where`` keeps runs whose last value of a metric compares as given
        (``("accuracy", ">", 0.9)``; a string compares with ``=``/``!=`` only), ``tags`` runs with
        all those tags, ``sort`` orders by the last value of a metric (highest first unless
        ``ascending``; runs without it last). All in SQL."""
        from mltrain.workspace.metrics import last_data, last_value

        order = [t.runs.c.created_at.desc(), t.runs.c.id.desc()]
        if sort:
            metric = last_value(t.runs.c.id, sort)
            order = [metric.is_(None), metric.asc() if ascending else metric.desc(), *order]
        q = (
            select(t.runs, t.experiments.c.name.label("experiment"))
            .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
            .order_by(*order)
        )
        for key, op, value in where:
            if isinstance(value, str):
                expr = last_data(t.runs.c.id, key)
                target: Any = json.dumps(value)
            else:
                expr, target = last_value(t.runs.c.id, key), value
            q = q.where(_compare(expr, op, target))
        for key, value in (tags or {}).items():
            tag = t.tags.alias()
            q = q.where(
                select(tag.c.run_id).where(tag.c.run_id == t.runs.c.id, tag.c.key == key, tag.c.value == value).exists()
            )
        if experiment:
            q = q.where(t.experiments.c.name == experiment)
        if status:
            q = q.where(func.lower(t.runs.c.status) == status.lower())
        if parent_run_id:
            q = q.where(t.runs.c.parent_run_id == parent_run_id)
        if limit:
            q = q.limit(limit)
        with self.db.read() as conn:
            return [RunInfo.from_row(r) for r in conn.execute(q)]

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of ``run_ids`` (full ids) that exists."""
        ids = list(run_ids)
        if not ids:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(ids)))
            return {r.id: r.status for r in rows}

    def duration(self, run_id: str) -> float:
        """Seconds from the run's record to its end (to now while it is active): what the run's
        summary and ``mltrain runs`` show."""
        with self.db.read() as conn:
            row = conn.execute(select(t.runs.c.created_at, t.runs.c.ended_at).where(t.runs.c.id == run_id)).one()
        return float((row.ended_at or now()) - row.created_at)

    def page(self, query: RunQuery) -> tuple[list[dict[str, Any]], int]:
        """One page of runs (filtered and sorted in SQL, metrics too) and how many match in all."""
        from mltrain.workspace.run_pages import page_runs

        return page_runs(self.db, query)

    def history(self, run_id: str) -> list[StatusChange]:
        """The status timeline of a run, oldest first."""
        q = select(t.run_status.c.status, t.run_status.c.ts, t.run_status.c.detail).where(
            t.run_status.c.run_id == run_id
        )
        with self.db.read() as conn:
            return [StatusChange.from_row(r) for r in conn.execute(q.order_by(t.run_status.c.id))]

    # -- tags and artifacts --------------------------------------------------------------------
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if not tags:
            return
        with self.db.write() as conn:
            for key, value in tags.items():
                upsert(conn, t.tags, {"run_id": run_id, "key": key}, {"value": str(value)}, {"value": str(value)})

    def tags(self, run_id: str) -> dict[str, str]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.tags.c.key, t.tags.c.value).where(t.tags.c.run_id == run_id))
            return {r.key: r.value for r in rows}

    def add_artifacts(self, run_id: str, items: Iterable[tuple[str, str, int]]) -> None:
        """Record artifacts (path, sha256, size); a path recorded again, or given twice, is replaced
        (the last one given wins)."""
        latest = {p: (s, n) for p, s, n in items}
        rows = [{"run_id": run_id, "path": p, "sha256": s, "size": n} for p, (s, n) in latest.items()]
        if not rows:
            return
        with self.db.write() as conn:
            conn.execute(
                t.artifacts.delete().where(
                    t.artifacts.c.run_id == run_id, t.artifacts.c.path.in_([r["path"] for r in rows])
                )
            )
            conn.execute(insert(t.artifacts), rows)

    def artifacts(self, run_id: str) -> list[Artifact]:
        q = select(t.artifacts.c.path, t.artifacts.c.sha256, t.artifacts.c.size).where(t.artifacts.c.run_id == run_id)
        with self.db.read() as conn:
            return [Artifact.from_row(r) for r in conn.execute(q.order_by(t.artifacts.c.path))]

    # -- liveness and cancel -------------------------------------------------------------------
    def heartbeat(self, run_id: str) -> bool:
        """Note that the driver is alive; return whether a cancel was requested."""
        with self.db.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(heartbeat_at=now()))
            return bool(conn.execute(select(t.runs.c.cancel_requested).where(t.runs.c.id == run_id)).scalar())

    def note(self, run_id: str, detail: str) -> None:
        """Add an entry to a run's status timeline, at its current status (e.g. a new attempt and its node)."""
        with self.db.write() as conn:
            status = conn.execute(select(t.runs.c.status).where(t.runs.c.id == run_id)).scalar()
            if status is not None:
                conn.execute(insert(t.run_status).values(run_id=run_id, status=status, ts=now(), detail=detail))

    def set_job_ref(self, run_id: str, ref: dict[str, Any]) -> None:
        """Replace the job reference of a running run (its target started the job again elsewhere)."""
        with self.db.write() as conn:
            conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**_encode({"job_ref": ref})))

    def request_cancel(self, run_id: str) -> RunInfo:
        """Flag a run (and its active children) for cancellation; return the run record."""
        run_id = self.resolve_id(run_id)
        with self.db.write() as conn:
            conn.execute(
                update(t.runs)
                .where(or_(t.runs.c.id == run_id, t.runs.c.parent_run_id == run_id), t.runs.c.status.in_(ACTIVE))
                .values(cancel_requested=True)
            )
        return self.get(run_id)

    def orphans(self, host: str, is_alive: Any) -> list[RunInfo]:
        """Active runs whose driver is gone: dead on this host, or silent too long elsewhere."""
        q = (
            select(t.runs, t.experiments.c.name.label("experiment"))
            .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
            .where(t.runs.c.status.in_(ACTIVE))
        )
        stale = now() - HEARTBEAT_TIMEOUT_S
        lost = []
        with self.db.read() as conn:
            for row in conn.execute(q):
                rec = RunInfo.from_row(row)
                if rec.driver_host == host:
                    if not is_alive(rec.driver_pid, rec.driver_start):
                        lost.append(rec)
                elif (rec.heartbeat_at or 0) < stale:
                    lost.append(rec)
        return lost
