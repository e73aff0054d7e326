"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

On SQLite every transaction is `BEGIN IMMEDIATE`: it takes the write lock up
front, so two processes never both read "unclaimed" and then both write, and a
waiting writer queues on the busy timeout instead of failing with a deadlock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    Engine,
    Row,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nurture.errors import ConfigError

BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "nurture_read_only"
PG_INSERT_CHUNK = 5_000


def dialect_name(bind: Session | Connection | Engine) -> str:
    """What `bind` talks to: "sqlite" or "postgresql"."""
    return str((bind.get_bind() if isinstance(bind, Session) else bind).dialect.name)


def is_postgres(bind: Session | Connection | Engine) -> bool:
    """For the few statements that differ (row locks, date arithmetic)."""
    return dialect_name(bind) == "postgresql"


def insert_on_conflict(table: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` that can take `.on_conflict_do_nothing()` or `.on_conflict_do_update()`.

    SQLite and PostgreSQL write ON CONFLICT the same way, but SQLAlchemy builds it per
    dialect: `dialect` is the bind's (see `dialect_name`)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"database.url: {url!r} is not a database URL (sqlite:///nurture.db or postgresql+psycopg://...)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        # No prepared statements: through PgBouncer in transaction mode each transaction may
        # run on another server connection (tests/integration/test_pgbouncer.py).
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"prepare_threshold": None}
        )
    raise ConfigError(
        f"database.url: {parsed.get_backend_name()!r} is not supported; use sqlite or postgresql"
    )


def _sqlite_engine(url: Any) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own handling defers it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Erasure means erasure: deleted rows are overwritten, not left in free pages.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Reads take a plain (deferred) BEGIN: under WAL they run beside a writer
        # and never hold up a claim.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of at most `size`: how the store is read and written in batches."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@contextmanager
def transaction(bind: Engine | Connection) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    Bound to a Connection that is already in a transaction (simulate, dry runs),
    each unit becomes a savepoint inside it and the caller decides the outcome.
    """
    mode: Literal["create_savepoint", "conditional_savepoint"] = (
        "create_savepoint" if isinstance(bind, Connection) else "conditional_savepoint"
    )
    with Session(bind, expire_on_commit=False, join_transaction_mode=mode) as session, session.begin():
        yield session


@contextmanager
def reading(bind: Engine | Connection) -> Iterator[Session]:
    """A transaction for reads only. On SQLite it does not take the write lock,
    so reports and exports never hold up a sending pass. Do not write in it."""
    if isinstance(bind, Engine):
        bind = bind.execution_options(**{READ_ONLY: True})
    with transaction(bind) as session:
        yield session


def insert_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[Column[Any]] = (),
    skip_conflicts_on: Sequence[str] = (),
) -> list[Row[*tuple[Any, ...]]]:
    """Insert many rows (all with the same keys); return the `returning` columns, in no set order.

    On PostgreSQL each column travels as one array parameter and the rows come out of
    unnest(): a few parameters per statement instead of one per value, several times
    faster than executemany or a long VALUES list for the tens of thousands of rows an
    import writes (psycopg parses a long VALUES list in Python). Elsewhere it is a
    plain executemany. With `skip_conflicts_on` (a unique key's columns) a row whose
    key is stored already is left out, and is not returned.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect

    def inserting() -> Any:
        if not skip_conflicts_on:
            return insert(table)
        statement = insert_on_conflict(table, dialect.name)
        return statement.on_conflict_do_nothing(index_elements=skip_conflicts_on)

    plain = not returning and not skip_conflicts_on
    if dialect.name == "sqlite" and plain and _sqlite_executemany(session, table, rows):
        return []
    if dialect.name != "postgresql":
        if returning:
            return list(session.execute(inserting().returning(*returning), list(rows)).all())
        session.execute(inserting(), list(rows))
        return []
    names = list(rows[0])
    found: list[Row[*tuple[Any, ...]]] = []
    for start in range(0, len(rows), PG_INSERT_CHUNK):
        chunk = rows[start : start + PG_INSERT_CHUNK]
        arrays = [
            bindparam(f"column_{index}", [row[name] for row in chunk], type_=ARRAY(table.c[name].type))
            for index, name in enumerate(names)
        ]
        source = func.unnest(*arrays).table_valued(*names).render_derived()
        statement = inserting().from_select(names, select(*(source.c[name] for name in names)))
        if returning:
            found.extend(session.execute(statement.returning(*returning)).all())
        else:
            session.execute(statement)
    return found


def _sqlite_executemany(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Insert rows through the driver's own executemany; False (nothing done) if that cannot be exact.

    SQLAlchemy's executemany builds and converts each row's parameters in Python, most
    of the time of a large import. Here each distinct value goes through its column's
    bind processor once (most dates in a batch are the same instant), so what is stored
    is what SQLAlchemy would store. A column left out that has a Python-side default
    needs SQLAlchemy to fill it in, so that case is left to SQLAlchemy.
    """
    names = list(rows[0])
    if any(column.default is not None and column.name not in names for column in table.c):
        return False
    bulk = BulkInsert(session.get_bind().dialect, table, names)
    pick = itemgetter(*names)
    values = [list(pick(row)) for row in rows] if len(names) > 1 else [[row[names[0]]] for row in rows]
    for index, name in enumerate(names):
        if not bulk.converts(name):
            continue
        converted: dict[Any, Any] = {}
        for value in values:
            raw = value[index]
            try:
                value[index] = converted[raw]
            except KeyError:
                value[index] = converted[raw] = bulk.bind(name, raw)
            except TypeError:  # an unhashable value (JSON): converted every time
                value[index] = bulk.bind(name, raw)
    bulk.run(session, list(map(tuple, values)))
    return True


class BulkInsert:
    """An INSERT of many rows of one table through the driver's executemany, its SQL built once.

    For the hot inserts of an import: rows are plain tuples in `names` order holding
    values already in their stored form (convert each kind of value with `bind`, once
    for a value every row shares), so nothing is done per row in Python.
    """

    def __init__(self, dialect: Dialect, table: Table, names: Sequence[str]) -> None:
        if dialect.paramstyle != "qmark":
            raise ValueError(f"BulkInsert writes qmark SQL; {dialect.name} uses {dialect.paramstyle}")
        quote = dialect.identifier_preparer.quote
        self.names = tuple(names)
        columns = ", ".join(map(quote, names))
        self.statement = f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join('?' * len(names))})"
        self._processors = {
            name: table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        }

    def converts(self, name: str) -> bool:
        """Whether column `name` stores values in another form than Python's (dates, for one)."""
        return self._processors[name] is not None

    def bind(self, name: str, value: Any) -> Any:
        """`value` as SQLAlchemy would store it in column `name`."""
        processor = self._processors[name]
        return value if processor is None else processor(value)

    def run(self, session: Session, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            session.connection().exec_driver_sql(self.statement, rows)


def rows_busy(exc: OperationalError) -> bool:
    """PostgreSQL refused a lock asked for with NOWAIT (55P03) or ended this transaction to
    break a deadlock (40P01): nothing was written, and the same work can be tried again."""
    return getattr(exc.orig, "sqlstate", None) in ("55P03", "40P01")


def refresh_statistics(bind: Engine | Connection, tables: Sequence[str]) -> None:
    """After a bulk write, tell PostgreSQL's planner what the tables now hold.

    Autovacuum does it too, but a minute or more later; a pass right after an import
    of many people would plan its claims for the empty tables of before (read and sort
    every due row, each round). SQLite is left as it is: nurture never runs ANALYZE
    there, and its plans are steered by the queries themselves."""
    if bind.dialect.name != "postgresql":
        return
    with transaction(bind) as session:
        connection = session.connection()
        for table in tables:
            connection.exec_driver_sql(f'ANALYZE "{table}"')


def stored_utc(when: datetime) -> str:
    """An aware datetime as SQLite stores it through UtcDateTime (naive UTC, microseconds
    always written): the same text as the column's bind processor, from C calls instead
    of a Python format per value. tests/integration/test_import_speed.py compares the two."""
    if when.tzinfo is UTC:  # most are: the text is followed by "+00:00", cut off
        return when.isoformat(" ", "microseconds")[:26]
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
