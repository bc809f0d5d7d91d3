"""Engines, sessions, migrations and the one dialect-specific statement (insert-or-ignore).

No engine exists at import time: `make_engine(url)` builds one for the composition root.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

from cloud.errors import CloudError
from matthan.i18n import Msg

log = logging.getLogger("matthan.cloud.db")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// mean psycopg 3 (the driver we ship), not psycopg2."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a connection killed under us (failover, pg_terminate_backend) is replaced, not used.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args={"connect_timeout": 10}
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: the API reads while the ingest writes; NORMAL is durable across process crashes in WAL.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run at every start; a no-op when current)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Several processes (serve, ingest workers) may start at once: one migrates,
                # the others wait and then find the schema current.
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise CloudError(Msg("database %(db)s: %(error)s", db=where, error=_first_line(exc))) from None


def check_connection(engine: Engine) -> float:
    """Seconds for a trivial round trip; raises SQLAlchemyError when the database is away."""
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return time.perf_counter() - started


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def dialect_insert(engine_or_session: Any, table: Table) -> Insert:
    name = (
        engine_or_session.get_bind().dialect.name
        if isinstance(engine_or_session, Session)
        else (engine_or_session.dialect.name)
    )
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise CloudError(Msg("unsupported database dialect %(name)s", name=name))


def insert_ignore(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """INSERT … ON CONFLICT (keys) DO NOTHING: a duplicate changes nothing, on both databases."""
    upsert(session, table, rows, keys)


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    set_columns: Sequence[str] = (),
    where: str | None = None,
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET col = excluded.col … [WHERE where], or DO NOTHING
    without set_columns. `where` is SQL both databases read alike (e.g. "alert.ended_at IS NULL").

    On PostgreSQL the rows go through psycopg's own executemany (pipelined, one prepared statement):
    SQLAlchemy's per-row parameter processing cost more than the database here. Every row must
    have the same keys."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        rows = _with_defaults(table, rows)
        cols = list(rows[0])
        action = "DO NOTHING"
        if set_columns:
            action = "DO UPDATE SET " + ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in set_columns)
            action += f" WHERE {where}" if where else ""
        marks = ", ".join(["%s"] * len(cols))
        sql = (
            f"INSERT INTO {_q(table.name)} ({', '.join(map(_q, cols))}) VALUES ({marks})"
            f" ON CONFLICT ({', '.join(map(_q, keys))}) {action}"
        )
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.executemany(sql, [tuple(_pg_value(r[c]) for c in cols) for r in rows])
        return
    stmt = dialect_insert(session, table)
    if set_columns:
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=list(keys),
            set_={c: stmt.excluded[c] for c in set_columns},  # type: ignore[attr-defined]
            where=text(where) if where else None,
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined]
    session.execute(stmt, list(rows))


def _q(name: str) -> str:
    return f'"{name}"'  # quoted: "offset" and friends are reserved words


def _with_defaults(table: Table, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill the model's client-side defaults a raw statement would otherwise miss."""
    missing = [c for c in table.c if c.name not in rows[0] and c.default is not None]
    if not missing:
        return list(rows)
    out = []
    for row in rows:
        extra = {}
        for c in missing:
            default: Any = c.default
            extra[c.name] = default.arg(None) if default.is_callable else default.arg
        out.append({**row, **extra})
    return out


def _pg_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        from psycopg.types.json import Json

        return Json(value)
    return value


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else exc.__class__.__name__
