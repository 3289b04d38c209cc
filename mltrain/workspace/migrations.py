"""Schema upgrades. A new database gets the current schema at once; an older one is upgraded
step by step, in the same transaction, keeping its data.

To change the schema: edit ``tables.py``, bump ``SCHEMA_VERSION``, and add a step here that turns
version N-1 into N (create the new tables, ``ALTER TABLE ... ADD COLUMN`` for new columns).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, insert, inspect, update

from mltrain.workspace import tables

# Tables of schema version 1; later versions add to this (see STEPS).
V1_TABLES = (
    "schema_info",
    "experiments",
    "runs",
    "run_status",
    "metrics",
    "tags",
    "artifacts",
    "snapshots",
    "models",
    "model_files",
    "model_aliases",
)


def _v2_environments(conn: Connection) -> None:
    tables.env_locks.create(conn)
    tables.environments.create(conn)


def _v3_endpoints(conn: Connection) -> None:
    tables.endpoints.create(conn)


def _add_run_column(conn: Connection, name: str) -> None:
    # version-1 tables are made from today's definitions (create_version), which already have it
    if name not in {c["name"] for c in inspect(conn).get_columns("runs")}:
        conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} TEXT")


def _v4_job_refs(conn: Connection) -> None:
    _add_run_column(conn, "job_ref")


def _v5_problems(conn: Connection) -> None:
    _add_run_column(conn, "problems")


def _v6_data(conn: Connection) -> None:
    for table in (tables.data_versions, tables.data_files, tables.data_aliases, tables.run_data):
        table.create(conn)


# version N -> the step that upgrades a database of version N-1 to N
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _v2_environments,
    3: _v3_endpoints,
    4: _v4_job_refs,
    5: _v5_problems,
    6: _v6_data,
}


def create_version(conn: Connection, version: int) -> None:
    """Create the schema of ``version`` in an empty database: the current one directly, an older
    one (for upgrade tests) as version 1 plus the steps after it.

    Version 1 is made from today's table definitions, so once a step adds a column to a version-1
    table, freeze the version-1 DDL here.
    """
    tables.define_all()
    if version == tables.SCHEMA_VERSION:
        tables.metadata.create_all(conn)
    else:
        v1 = [t for t in tables.metadata.sorted_tables if t.name in V1_TABLES]
        tables.metadata.create_all(conn, tables=v1)
        for step in range(2, version + 1):
            STEPS[step](conn)
    conn.execute(insert(tables.schema_info).values(id=1, version=version, upgraded_at=time.time()))


def upgrade(conn: Connection, current: int | None) -> None:
    """Bring the database from ``current`` (None: empty) to ``tables.SCHEMA_VERSION``."""
    if current is None:
        create_version(conn, tables.SCHEMA_VERSION)
        return
    for version in range(current + 1, tables.SCHEMA_VERSION + 1):
        STEPS[version](conn)
    conn.execute(
        update(tables.schema_info)
        .where(tables.schema_info.c.id == 1)
        .values(version=tables.SCHEMA_VERSION, upgraded_at=time.time())
    )
