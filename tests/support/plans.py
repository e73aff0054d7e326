"""Query plans of the statements a piece of code runs, on SQLite and PostgreSQL.

The plan tests (tests/integration/test_pass_plans.py, test_webhook_plans.py) set up a store
whose statistics are from before a batch, as a real one's are, and check that statements
meant to find rows by id do, instead of walking a status index over the history.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, insert, select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import refresh_statistics, transaction
from tests.support.factories import active_subscribers

PEOPLE = 1_000
PAST_EMAILS = 12  # per person, all sent long ago


def _explain_prefix(engine: Engine) -> str:
    return "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "


def _plan_text(rows: Any) -> str:
    return " | ".join(str(row[-1]) for row in rows)


@contextmanager
def plans(engine: Engine, kinds: tuple[str, ...] = ("SELECT", "UPDATE")) -> Iterator[list[str]]:
    """Every statement of `kinds` on deliveries inside is explained instead of run; yields the plans."""
    seen: list[str] = []
    explain = _explain_prefix(engine)

    def wanted(statement: str) -> bool:
        return statement.lstrip().upper().startswith(kinds) and "deliveries" in statement

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> tuple[str, Any]:
        return (explain + statement if wanted(statement) else statement), parameters

    def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(explain):
            seen.append(_plan_text(cursor.fetchall()))

    event.listen(engine, "before_cursor_execute", before, retval=True)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


@contextmanager
def plans_alongside(engine: Engine) -> Iterator[list[tuple[str, str]]]:
    """Every single-row SELECT, UPDATE or DELETE inside is explained first, then run as it is;
    yields (statement, plan) pairs. For code that goes on to use what its reads return."""
    seen: list[tuple[str, str]] = []
    explain = _explain_prefix(engine)

    def before(
        _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            cursor.execute(explain + statement, parameters)
            seen.append((statement, _plan_text(cursor.fetchall())))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def history_then_a_batch(app: App, now: datetime) -> tuple[list[int], list[int]]:
    """People with a long sent history, analyzed as it is; then one batch claimed now, as a
    pass claims it: newer than the statistics. Returns (people, the batch's delivery ids)."""
    people = active_subscribers(app, PEOPLE, now - timedelta(days=400))
    with transaction(app.engine) as session:
        session.execute(
            insert(m.Delivery),
            [
                {
                    "subscriber_id": person,
                    "stream": f"old-series-{n}",
                    "step": 1,
                    "step_key": "first",
                    "status": m.DeliveryStatus.SENT,
                    "claimed_at": now - timedelta(days=30 + n),
                    "finished_at": now - timedelta(days=30 + n),
                }
                for person in people
                for n in range(PAST_EMAILS)
            ],
        )
    refresh_statistics(app.engine, ("deliveries",))
    with transaction(app.engine) as session:
        session.execute(
            insert(m.Delivery),
            [
                {
                    "subscriber_id": person,
                    "stream": "kap-intro",
                    "step": 1,
                    "step_key": "what-kap-is",
                    "status": m.DeliveryStatus.CLAIMED,
                    "claimed_at": now,
                }
                for person in people
            ],
        )
        batch = session.scalars(
            select(m.Delivery.id).where(m.Delivery.status == m.DeliveryStatus.CLAIMED)
        ).all()
    assert len(batch) == PEOPLE
    return people, list(batch)
