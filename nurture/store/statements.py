"""Statements that select or update rows by long lists of ids, built once per dialect.

SQLAlchemy expands `IN (:ids)` into one bound parameter per id, which costs more
than the query itself; on SQLite the list goes in as one JSON array instead
(`IN (SELECT value FROM json_each(:ids))`, which SQLite plans as lookups by key,
like a plain IN list), and on PostgreSQL a list of primary keys goes in as one array
(`id = ANY(:ids)`: a thousand parameters cost the server more to parse and plan than
the update itself). Other columns keep the plain IN list there: with a parameter
PostgreSQL cannot see into, a generic plan may scan a whole table for them.
Statements are cached per (dialect, driver): building and compiling them once per
process keeps a large pass cheap.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from nurture.store.db import chunks

# New column values as ((column, value), ...): hashable, so rows getting the same values
# are grouped and updated with one `WHERE id IN (...)` statement.
Values = tuple[tuple[str, Any], ...]


def _has_json_each(dbapi: Any) -> bool:
    """Whether this SQLite library has the JSON functions (built in from 3.38, optional before)."""
    try:
        probe = dbapi.connect(":memory:")
        try:
            probe.execute("SELECT value FROM json_each('[1]')").fetchall()
        finally:
            probe.close()
    except Exception:  # noqa: BLE001 - any failure means: use plain IN lists
        return False
    return True


class IdStatements:
    """Id-list statements for one dialect; get the shared one with `statements_for()`."""

    def __init__(self, dialect: Any) -> None:
        self.dialect_name: str = dialect.name
        self.json_ids = (
            dialect.name == "sqlite" and dialect.driver == "pysqlite" and _has_json_each(dialect.dbapi)
        )
        self.id_arrays = dialect.name == "postgresql"
        # Longest id list in one statement: old SQLite builds allow 999 parameters; a JSON
        # text or a PostgreSQL array is one parameter, and PostgreSQL takes 65,535 in all.
        self.chunk = 5000 if self.json_ids or self.id_arrays else 500
        self._updates: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._built: dict[str, Any] = {}

    def in_ids(self, column: Any) -> Any:
        """`column IN (:ids)`; bind the list with `ids()`."""
        if self.json_ids:
            values = func.json_each(bindparam("ids", type_=String())).table_valued("value")
            return column.in_(select(values.c.value))
        if self.id_arrays and column.primary_key:
            return column == any_(bindparam("ids", type_=ARRAY(BigInteger())))
        return column.in_(bindparam("ids", expanding=True))

    def unindexed(self, column: Any) -> Any:
        """`column`'s value, written so that no index on it can be picked: for a condition that
        only sorts out rows already found another way (by id).

        The planners otherwise go by the statistics of before the pass, in which the status
        "claimed" is rare, and read the rows through the status index: every row claimed
        since, and on PostgreSQL every dead version a status change left in that index until
        a vacuum (a 1,000,000-email pass read the whole table once per batch for its
        handed-over marks: benchmarks/RESULTS.md). SQLite: a unary + (a no-op on the
        value); PostgreSQL: `|| ''` on text."""
        if self.dialect_name == "postgresql":
            return column.concat("")
        return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)

    def rows(self, connection: Any, query: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Every row of `query` as a plain tuple of the stored values (ints, text, NULL).

        pysqlite lets go of the GIL for each row it steps to and must win it back; while
        other threads of a pass run Python, each row can wait a whole switch interval.
        So where SQLite has the JSON functions it hands the rows over as one JSON array:
        one step, however many rows. No column type processing happens either way, so
        only for columns whose stored values are what the caller wants (no datetimes).
        """
        if not self.json_ids:
            return [tuple(row) for row in connection.execute(query, params).all()]
        inner = query.subquery()
        aggregated = select(func.json_group_array(func.json_array(*inner.c)))
        return [tuple(row) for row in json.loads(connection.execute(aggregated, params).scalar_one())]

    def ids(self, ids: Sequence[int]) -> Any:
        return json.dumps(list(ids)) if self.json_ids else list(ids)

    def id_chunks(self, ids: Sequence[int]) -> Iterable[Any]:
        for chunk in chunks(ids, self.chunk):
            yield self.ids(chunk)

    def update(self, table: Any, columns: tuple[str, ...]) -> Any:
        """`UPDATE table SET column = :v_column, ... WHERE id IN (:ids)`."""
        key = (table, columns)
        statement = self._updates.get(key)
        if statement is None:
            statement = self._updates[key] = (
                update(table)
                .where(self.in_ids(table.c.id))
                .values({column: bindparam(f"v_{column}", type_=table.c[column].type) for column in columns})
            )
        return statement

    def built(self, name: str, build: Callable[[IdStatements], Any]) -> Any:
        """The statement `build(self)` under `name`, built on first use.

        Two threads may both build it the first time; both results are the same
        statement, so the race costs one extra build and nothing else.
        """
        statement = self._built.get(name)
        if statement is None:
            statement = self._built[name] = build(self)
        return statement


_statements: dict[tuple[str, str], IdStatements] = {}
_statements_lock = threading.Lock()


def statements_for(connection: Any) -> IdStatements:
    """The shared id-list statements for this connection's dialect and driver."""
    dialect = connection.dialect
    key = (dialect.name, dialect.driver)
    statements = _statements.get(key)
    if statements is None:
        with _statements_lock:
            statements = _statements.get(key)
            if statements is None:
                statements = _statements[key] = IdStatements(dialect)
    return statements


def update_grouped(session: Session, table: Any, groups: dict[Values, list[int]]) -> None:
    """UPDATE rows by id, one `WHERE id IN (...)` statement per set of new values (and chunk).

    The values are bound once per statement, not once per row: most rows of a pass get
    the same ones (same status, same instant, same next window in the same zone).
    """
    if not groups:
        return
    connection = session.connection()
    statements = statements_for(connection)
    for values, ids in groups.items():
        statement = statements.update(table, tuple(column for column, _ in values))
        params = {f"v_{column}": value for column, value in values}
        for chunk in statements.id_chunks(ids):
            connection.execute(statement, {**params, "ids": chunk})
