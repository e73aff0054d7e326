"""Newsletters claimed zone by zone: the reads are index ranges, a pass with no zone due
reads no subscriber, and a finished zone is written down and not read again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from nurture.app import App
from nurture.newsletters import schedule
from nurture.sending.claim_statements import ACTIVE_ZONES, newsletter_cohort
from nurture.sending.sendpass import send_due
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at
from tests.support.newsletters import (
    BEFORE,
    add_people,
    deliveries,
    newsletter_file,
    recording_app,
    status_of,
)

INDEX = "ix_subscribers_status_timezone_id"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL each statement run on `engine` meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def cohort_reads(seen: list[str]) -> list[str]:
    """Statements that read subscribers to claim them (only those select the address)."""
    return [sql for sql in seen if "subscribers.email" in sql and "deliveries" in sql]


def finished(app: App, newsletter_id: int) -> set[str]:
    with transaction(app.engine) as session:
        return set(
            session.scalars(
                select(m.NewsletterZone.timezone).where(m.NewsletterZone.newsletter_id == newsletter_id)
            )
        )


@pytest.mark.parametrize("no_zone", [False, True])
@pytest.mark.parametrize("segment", [False, True])
def test_sqlite_reads_zones_and_cohorts_through_the_zone_index(
    tmp_path: Path, no_zone: bool, segment: bool
) -> None:
    app, _ = recording_app(tmp_path)
    add_people(app, "Europe/London", 3, BEFORE, prefix="london")
    add_people(app, None, 3, BEFORE, prefix="nozone")
    for name, statement in [
        ("zones", ACTIVE_ZONES),
        ("cohort", newsletter_cohort(no_zone=no_zone, segment=segment, lock=False)),
    ]:
        compiled = statement.compile(dialect=app.engine.dialect)
        with app.engine.connect() as connection:
            params = compiled.construct_params(
                {
                    "zone": "Europe/London",
                    "after": 0,
                    "now": BEFORE,
                    "stream": "newsletter:1",
                    "room": 10,
                    "tag": "x",
                }
            )
            plan = " | ".join(
                str(row[3])
                for row in connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}", tuple(params[key] for key in compiled.positiontup or [])
                )
            )
        assert f"INDEX {INDEX}" in plan, (name, plan)
        assert "SCAN subscribers" not in plan and "PRIMARY KEY" not in plan, (name, plan)


def test_a_pass_while_no_zone_has_come_due_reads_no_subscriber(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path)
    add_people(app, "Europe/London", 5, BEFORE, prefix="london")
    add_people(app, None, 5, BEFORE, prefix="nozone")
    schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    # 09:00 has come at UTC+14 (19:00Z), not yet in London or Los Angeles.
    with statements(app.engine) as seen:
        assert send_due(app, at("2026-11-30 22:00")).sent == 0
    assert cohort_reads(seen) == []


def test_a_finished_zone_is_written_down_and_not_read_again(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path)
    london = add_people(app, "Europe/London", 5, BEFORE, prefix="london")
    add_people(app, None, 5, BEFORE, prefix="nozone")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    with statements(app.engine) as seen:
        assert send_due(app, at("2026-12-01 09:00")).sent == 5
    assert cohort_reads(seen)  # London's hour: its readers are read (and claimed)
    assert finished(app, newsletter_id) == {"Europe/London"}
    with statements(app.engine) as seen:
        assert send_due(app, at("2026-12-01 09:01")).sent == 0
    assert cohort_reads(seen) == []
    assert send_due(app, at("2026-12-01 17:00")).sent == 5  # no zone given: Los Angeles
    assert finished(app, newsletter_id) == {"Europe/London", ""}
    assert sorted(row.subscriber_id or 0 for row in deliveries(app) if row.subscriber_id in london) == london
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENDING  # 09:00 has not come at UTC-12 yet
    assert send_due(app, at("2026-12-01 21:00")).sent == 0
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT


def test_a_reader_over_the_daily_cap_keeps_the_zone_open_until_their_next_day(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path, **{"delivery.max_emails_per_day": 1})
    add_people(
        app, "America/New_York", 1, at("2026-12-01 14:00"), prefix="reader", enroll_them=True
    )  # series step at 09:00 NY
    add_people(app, "America/New_York", 2, BEFORE, prefix="other")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 08:00", "practice", BEFORE)  # 16:00Z
    send_due(app, at("2026-12-01 14:00"))
    summary = send_due(app, at("2026-12-01 16:00"))
    assert (summary.sent, summary.rescheduled) == (2, 1)
    assert finished(app, newsletter_id) == set()  # someone there still waits
    assert send_due(app, at("2026-12-02 14:00")).sent == 1  # 09:00 NY the next day, when the window opens
    assert finished(app, newsletter_id) == {"America/New_York"}
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT


def test_a_reader_who_joins_a_finished_zone_does_not_get_that_newsletter(tmp_path: Path) -> None:
    """The newsletter went out in that zone at its hour; later readers get the next one.
    (A released claim reopens the zone: tests/integration/test_newsletters.py.)"""
    app, _ = recording_app(tmp_path)
    add_people(app, "Europe/London", 2, BEFORE, prefix="london")
    add_people(app, "America/New_York", 2, BEFORE, prefix="ny")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    assert send_due(app, at("2026-12-01 09:00")).sent == 2
    late = add_people(app, "Europe/London", 1, at("2026-12-01 10:00"), prefix="late")
    assert send_due(app, at("2026-12-01 14:00")).sent == 2  # New York's hour
    stream = newsletter_stream(newsletter_id)
    assert late[0] not in {row.subscriber_id for row in deliveries(app, stream)}
    assert send_due(app, at("2026-12-01 21:00")).sent == 0
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT
