"""The workspace database: one engine per URL, SQLite tuned for many concurrent writers.

Contract: ``Database.write()`` yields a connection inside a transaction that holds the write lock
from its first statement (``BEGIN IMMEDIATE`` on SQLite), so read-modify-write sequences such as
"next model version" are atomic; ``Database.read()`` yields a connection for reads only. A SQLite
file found damaged (SQLite reports a malformed page) is a WorkspaceError naming the file and the fix,
wherever SQLite meets the damage; ``check_writable()`` checks the whole file before a run records anything.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, func, select
from sqlalchemy.exc import DatabaseError, OperationalError

from mltrain.errors import WorkspaceError
from mltrain.workspace import migrations, tables

SQLITE_BUSY_TIMEOUT_MS = 60_000


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("mltrain_read") else "BEGIN IMMEDIATE")

    return engine


DAMAGE_CODES = (11, 26)  # SQLite's result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB
CHECKED_SUFFIX = "-checked"  # beside the database file: the file's identity when quick_check last passed


def is_damage(exc: BaseException) -> bool:
    """True when ``exc`` (a SQLAlchemy or sqlite3 error) is SQLite finding the database file damaged."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(orig, sqlite3.DatabaseError) and code is not None and code & 0xFF in DAMAGE_CODES


def sqlite_check(path: Path, pragma: str = "quick_check") -> list[str]:
    """The problems SQLite's ``quick_check`` (or ``integrity_check``) finds in the file (read only); [] when none."""
    conn = read_only(path)
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


EMPTY_FILE_WAIT_S = 2.0  # a database file another process is creating gets its header within this


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only SQLite connection to ``path`` (its name quoted for the URI)."""
    uri = f"file:{quote(str(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)


def check_sqlite_file(path: Path) -> None:
    """Refuse (WorkspaceError naming the file) an existing database file that is empty or not SQLite,
    before anything opens it for writing, so nothing is ever written over it. A missing file is a new
    workspace. The file is only ever opened through SQLite: closing a plain descriptor of it would drop
    the POSIX locks of every SQLite connection this process has on it, and another process could then
    take itself for the last one and remove the write-ahead log under them."""
    restore = "restore it from a backup (`mltrain workspace backup DEST` makes one)"
    deadline = time.monotonic() + EMPTY_FILE_WAIT_S
    while True:
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WorkspaceError(f"cannot read the workspace database {path}: {exc}") from None
        if size or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # maybe being created by another mltrain process right now
    if not size:
        raise WorkspaceError(
            f"the workspace database {path} is empty (0 bytes): its runs, models and endpoints are not in it",
            hint=f"{restore}; only if this workspace never held anything, delete the file to start afresh",
        )
    conn = read_only(path)
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # reads the header page
    except sqlite3.OperationalError:
        pass  # busy or unreadable now: opening it for writing reports that
    except sqlite3.DatabaseError:
        raise WorkspaceError(
            f"the workspace database {path} is damaged: it is not an SQLite database (it was not opened)",
            hint=restore,
        ) from None
    finally:
        conn.close()


class Database:
    """An engine on the workspace database, with the schema brought up to date on open.

    An existing SQLite file that is empty or damaged is an error naming the file; nothing is written to it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.path = sqlite_path(url) if self.is_sqlite else None
        if self.path is not None:
            check_sqlite_file(self.path)
        try:
            self.engine = _sqlite_engine(url) if self.is_sqlite else create_engine(url, pool_pre_ping=True)
            self._ensure_schema()
        except OperationalError as exc:
            raise WorkspaceError(
                f"cannot open the workspace database {self.safe_url}: {exc.orig}",
                hint="check workspace.db_url / MLTRAIN_DB_URL and that the database is reachable",
            ) from exc
        except DatabaseError as exc:
            raise damaged(self.safe_url, exc) from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def _raise_if_damaged(self, exc: BaseException) -> None:
        """Raise the damaged-database error (from ``exc``) when ``exc`` is SQLite finding the file damaged."""
        if is_damage(exc):
            raise damaged(self.safe_url, exc) from exc

    def check_writable(self) -> None:
        """Before a run records anything: a damaged SQLite file is refused (WorkspaceError naming it,
        ``mltrain workspace check`` and a backup) and nothing is written to it. SQLite's ``quick_check``
        reads every page (0.5 s for 300 MB), so its verdict is kept beside the file
        (``mltrain.db-checked``: inode, size, mtime, ctime) and checked again only when the file has
        changed since: commits go to the write-ahead log, so that is after a checkpoint or a change
        from outside; otherwise the check costs one ``stat``."""
        if self.path is None:
            return
        marker = self.path.with_name(self.path.name + CHECKED_SUFFIX)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
        try:
            if marker.read_text() == stamp:
                return
        except (OSError, UnicodeDecodeError):
            pass
        problems = sqlite_check(self.path)
        if problems:
            raise damaged(str(self.path), "; ".join(problems[:3]))
        tmp = marker.with_name(f"{marker.name}.{os.getpid()}")
        try:
            tmp.write_text(stamp)
            os.replace(tmp, marker)
        except OSError:
            pass  # a read-only folder: checked again next time

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success, rolled back on error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            self._raise_if_damaged(exc)
            raise

    @contextmanager
    def bulk_write(self) -> Iterator[Connection]:
        """``write()`` for bulk loads whose references are known to exist (metrics of a recorded
        run): on SQLite the per-row foreign-key checks are off for this transaction only."""
        if not self.is_sqlite:
            with self.write() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            dbapi.execute("PRAGMA foreign_keys=OFF")  # no effect inside a transaction: before BEGIN
            try:
                with conn.begin():
                    yield conn
            except (DatabaseError, sqlite3.DatabaseError) as exc:
                self._raise_if_damaged(exc)
                raise
            finally:
                dbapi.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (a consistent snapshot on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(mltrain_read=True)
                with conn.begin():
                    yield conn
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            self._raise_if_damaged(exc)
            raise

    def _ensure_schema(self) -> None:
        with self.read() as conn:
            version = self._version(conn)
        if version == tables.SCHEMA_VERSION:
            return
        if version is not None and version > tables.SCHEMA_VERSION:
            raise WorkspaceError(
                f"the workspace database {self.safe_url} has schema version {version}, newer than this "
                f"mltrain understands ({tables.SCHEMA_VERSION})",
                hint="upgrade mltrain (pip install -U mltrain)",
            )
        with self.write() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7348115)")
            migrations.upgrade(conn, self._version(conn))

    @staticmethod
    def _version(conn: Connection) -> int | None:
        if not conn.dialect.has_table(conn, tables.schema_info.name):
            return None
        return conn.execute(select(tables.schema_info.c.version).where(tables.schema_info.c.id == 1)).scalar()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def damaged(where: str, exc: BaseException | str) -> WorkspaceError:
    """The error for a database that SQLite (or the server) reports as damaged."""
    detail = exc if isinstance(exc, str) else getattr(exc, "orig", None) or exc
    return WorkspaceError(
        f"the workspace database {where} is damaged: {detail}",
        hint="run `mltrain workspace check` to see what is affected, then restore the database from a backup",
    )


def upsert(
    conn: Connection, table: Any, keys: dict[str, Any], values: dict[str, Any], update: dict[str, Any] | None = None
) -> None:
    """Insert ``keys`` + ``values``; where a row with ``keys`` exists, set ``update`` on it instead
    (nothing when ``update`` is empty). Atomic against concurrent writers on SQLite and PostgreSQL."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(table).values(**keys, **values)
        if update:
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))
        else:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=list(keys)))
        return
    from sqlalchemy import and_, insert
    from sqlalchemy import update as sql_update

    where = and_(*(table.c[k] == v for k, v in keys.items()))
    updated = bool(update) and conn.execute(sql_update(table).where(where).values(**update)).rowcount
    if not updated and conn.execute(select(table.c[next(iter(keys))]).where(where)).first() is None:
        conn.execute(insert(table).values(**keys, **values))


_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[int] | None]] = {}


def bulk_insert(conn: Connection, table: Any, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) with one executemany of a pre-compiled INSERT:
    the batched write path for large volumes (metrics), without per-row statement compilation."""
    if not rows:
        return
    key = (table.name, conn.dialect.name, columns)
    if key not in _COMPILED:
        from sqlalchemy import insert

        compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(columns))
        order = [columns.index(name) for name in compiled.positiontup] if compiled.positional else None
        _COMPILED[key] = (str(compiled), order)
    sql, order = _COMPILED[key]
    if order is None:
        params: list[Any] = [dict(zip(columns, r, strict=True)) for r in rows]
    elif order == list(range(len(columns))):
        params = rows
    else:
        params = [tuple(r[i] for i in order) for r in rows]
    conn.exec_driver_sql(sql, params)


def has_prefix(column: Any, prefix: str) -> Any:
    """A condition: ``column`` starts with ``prefix``, character for character and case-sensitively on
    every database (no ``LIKE``: its ``_`` and ``%`` would be wildcards)."""
    return func.substr(column, 1, len(prefix)) == prefix


def now() -> float:
    """Timestamps stored in the workspace: seconds since the epoch."""
    return time.time()


def fetch_tuples(conn: Connection, stmt: Any) -> list[tuple[Any, ...]]:
    """Rows of a SELECT as plain tuples straight from the driver's cursor, inside ``conn``'s
    transaction: the read path for large results (a metric series), without per-row result objects."""
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.params
    args: Any = tuple(params[name] for name in compiled.positiontup) if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return cursor.fetchall()  # type: ignore[no-any-return]
    finally:
        cursor.close()
