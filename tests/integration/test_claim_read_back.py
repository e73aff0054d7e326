"""How a pass reads claims and due rows on SQLite: all at once, and the same as row by row.

`IdStatements.rows` hands a query's rows over as one JSON array (one driver step);
claims are read back by id after the INSERT, under the claim's write lock. Past
READ_BACK_LIMIT SQLite may choose delivery ids at random, and the INSERT returns its
rows instead: everyone still gets every email exactly once.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Integer, String, column, insert, literal, select, table, union_all

from nurture.sending import claim_rows as claims_module
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.store.statements import statements_for
from tests.support.factories import active_subscribers, at, make_app

START = at("2026-12-01 14:00")


def test_rows_in_one_step_equal_rows_one_by_one(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    values = [
        (1, "plain", None),
        (2**62 + 5, 'é \u2028 "quoted" \\ back\nslash', "x"),
        (-3, "", "\U0001f600"),
    ]
    parts = [
        select(
            literal(a, Integer()).label("a"), literal(b, String()).label("b"), literal(c, String()).label("c")
        )
        for a, b, c in values
    ]
    query = union_all(*parts).subquery()
    ordered = select(query.c.a, query.c.b, query.c.c).order_by(query.c.a)
    with transaction(app.engine) as session:
        connection = session.connection()
        statements = statements_for(connection)
        assert statements.json_ids  # this SQLite has the JSON functions: the one-step path is the one tested
        at_once = statements.rows(connection, ordered, {})
        one_by_one = [tuple(row) for row in connection.execute(ordered)]
    assert at_once == one_by_one == sorted(values)


def test_claims_are_read_back_whole_and_sent_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 30, START)
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 30
    with transaction(app.engine) as session:
        rows = session.execute(select(m.Delivery.subscriber_id, m.Delivery.status)).all()
    assert len(rows) == len({subscriber for subscriber, _ in rows}) == 30
    assert {status for _, status in rows} == {m.DeliveryStatus.SENT}


def test_past_the_read_back_limit_the_insert_returns_its_rows(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 25, START)
    # A delivery with the largest id SQLite allows: new ids are then picked at random.
    deliveries = table(
        "deliveries",
        column("id"),
        column("subscriber_id"),
        column("stream"),
        column("step"),
        column("step_key"),
        column("status"),
        column("worker"),
        column("claimed_at"),
    )
    with transaction(app.engine) as session:
        session.execute(
            insert(deliveries).values(
                id=2**63 - 1,
                subscriber_id=None,
                stream="old",
                step=1,
                step_key="old",
                status="sent",
                worker="test",
                claimed_at="2026-01-01 00:00:00.000000",
            )
        )
    assert claims_module.READ_BACK_LIMIT < 2**63 - 1
    summary = send_due(app, at("2026-12-01 15:00"))
    assert summary.sent == 25
    with transaction(app.engine) as session:
        sent = (
            session.execute(select(m.Delivery.subscriber_id).where(m.Delivery.stream != "old"))
            .scalars()
            .all()
        )
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 25
