"""The import's fast second pass on SQLite: values stored exactly as SQLAlchemy stores them,
rows read back across lookup slices, the fallback when ids are not handed out in order,
enrollments made in one INSERT ... SELECT, and header columns read as a dict would."""

from __future__ import annotations

import csv
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from nurture.app import App
from nurture.audience import import_writer, importer
from nurture.audience.importer import import_csv, scan_rows
from nurture.audience.people import forget
from nurture.audience.signup import subscribe, unsubscribe_email
from nurture.series.enrollment import enroll_in_campaign
from nurture.store import models as m
from nurture.store.db import stored_utc, transaction
from nurture.tokens import address_hash, address_hasher
from tests.support.csv_files import write_csv_lf as write_csv
from tests.support.factories import at

NOW = at("2026-12-01 18:00")


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
        datetime.fromisoformat("2026-03-01T14:30:00Z"),
        datetime.fromisoformat("2026-03-01T14:30:00+05:45"),
    ],
)
def test_stored_utc_is_what_sqlalchemy_stores(app: App, when: datetime) -> None:
    dialect = app.engine.dialect
    column = m.ConsentEvent.__table__.c.occurred_at
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    assert stored_utc(when) == processor(when)


def stored(app: App, sql: str) -> list[tuple[object, ...]]:
    with transaction(app.engine) as session:
        return [tuple(row) for row in session.execute(text(sql))]


def test_imported_rows_read_back_as_the_orm_wrote_them(app: App, tmp_path: Path) -> None:
    """Subscribers, consent records and enrollments written by the raw path load through the
    ORM with the values the SQLAlchemy path would have given them."""
    path = write_csv(
        tmp_path / "a.csv",
        [["Ann@Example.com", "Ann", "Europe/Paris", "2025-06-01T08:00:00+02:00", "paper form"]],
    )
    report = import_csv(app, path, NOW)
    assert (report.created, report.enrolled) == (1, 1)
    with transaction(app.engine) as session:
        ann = session.scalars(select(m.Subscriber)).one()
        assert (ann.email, ann.email_key, ann.first_name, ann.timezone, ann.status, ann.source) == (
            "Ann@example.com",
            "ann@example.com",
            "Ann",
            "Europe/Paris",
            m.SubscriberStatus.ACTIVE,
            "import",
        )
        assert (ann.created_at, ann.confirmed_at, ann.status_changed_at, ann.confirm_nonce) == (
            NOW,
            NOW,
            NOW,
            0,
        )
        event = session.scalars(select(m.ConsentEvent)).one()
        assert (
            event.subscriber_id,
            event.kind,
            event.occurred_at,
            event.recorded_at,
            event.source,
            event.detail,
        ) == (ann.id, m.ConsentKind.IMPORT, at("2025-06-01 06:00"), NOW, "paper form", "imported from a.csv")
        assert (event.ip, event.user_agent, event.wording_version) == (None, None, None)
        fast = session.scalars(select(m.Enrollment)).one()
        session.delete(fast)
        session.flush()
        [campaign] = [
            c for c in app.catalog.refresh(app.engine, create=False).values() if c.trigger == "confirmed"
        ]
        assert enroll_in_campaign(session, campaign, [ann.id], NOW) == 1
        usual = session.scalars(select(m.Enrollment)).one()
        columns = (
            "subscriber_id",
            "campaign",
            "next_step",
            "next_step_key",
            "version",
            "next_due_at",
            "status",
            "enrolled_at",
            "updated_at",
        )
        assert [getattr(fast, name) for name in columns] == [getattr(usual, name) for name in columns]
        session.rollback()
    # Stored text, not only what the ORM reads back: the same as the ORM's own writes.
    assert stored(app, "SELECT created_at, confirmed_at FROM subscribers") == [
        ("2026-12-01 18:00:00.000000",) * 2
    ]
    assert stored(app, "SELECT occurred_at, recorded_at FROM consent_events") == [
        ("2025-06-01 06:00:00.000000", "2026-12-01 18:00:00.000000")
    ]


def test_lookups_split_into_slices_decide_as_one(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Existing, erased and left addresses are found whichever lookup slice they fall in."""
    monkeypatch.setattr(import_writer, "LOOKUP", 2)
    subscribe(app, "gone@example.com", NOW - timedelta(days=3))
    forget(app, "gone@example.com", NOW - timedelta(days=2))
    subscribe(app, "left@example.com", NOW - timedelta(days=3))
    assert unsubscribe_email(app, "left@example.com", NOW - timedelta(days=1))
    rows = [[f"p{i}@example.com", "", "", "2025-01-01", "form"] for i in range(7)]
    rows[3] = ["gone@example.com", "", "", "2025-01-01", "form"]
    rows[6] = ["left@example.com", "", "", "2025-01-01", "form"]
    path = write_csv(tmp_path / "people.csv", rows)
    first = import_csv(app, path, NOW)
    assert (first.created, first.skipped_erased, first.skipped_unsubscribed, first.merged) == (5, 1, 1, 0)
    again = import_csv(app, path, NOW)
    assert (
        again.created,
        again.merged,
        again.skipped_erased,
        again.skipped_unsubscribed,
        again.enrolled,
    ) == (0, 5, 1, 1, 0)


def test_ids_out_of_order_fall_back_to_finding_rows_by_address(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the largest id is taken SQLite picks ids at random: the rows just added are not
    the ones above the old maximum, so they are looked up by address and enrolled by id."""
    monkeypatch.setattr(importer, "CHUNK", 3)
    with transaction(app.engine) as session:
        session.add(
            m.Subscriber(
                id=2**63 - 1,
                email="top@example.com",
                email_key="top@example.com",
                status=m.SubscriberStatus.ACTIVE,
                created_at=NOW,
                status_changed_at=NOW,
                confirm_nonce=0,
            )
        )
    rows = [[f"p{i}@example.com", f"P{i}", "", f"2025-01-0{i + 1}", "form"] for i in range(7)]
    report = import_csv(app, write_csv(tmp_path / "people.csv", rows), NOW)
    assert (report.created, report.enrolled) == (7, 7)
    with transaction(app.engine) as session:
        people = {
            person.email_key: person
            for person in session.scalars(select(m.Subscriber).where(m.Subscriber.id != 2**63 - 1))
        }
        assert sorted(people) == sorted(f"p{i}@example.com" for i in range(7))
        for i in range(7):
            person = people[f"p{i}@example.com"]
            [event] = session.scalars(select(m.ConsentEvent).where(m.ConsentEvent.subscriber_id == person.id))
            assert (person.first_name, event.occurred_at) == (f"P{i}", at(f"2025-01-0{i + 1} 00:00"))
        enrolled = set(session.scalars(select(m.Enrollment.subscriber_id)))
        assert enrolled == {person.id for person in people.values()}


def test_no_enroll_writes_no_enrollments(app: App, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [["a@example.com", "", "", "2025-01-01", "form"]])
    report = import_csv(app, path, NOW, enroll_subscribers=False)
    assert (report.created, report.enrolled) == (1, 0)
    assert stored(app, "SELECT count(*) FROM enrollments") == [(0,)]


def test_columns_are_read_as_a_dict_of_the_header_would_read_them(tmp_path: Path) -> None:
    """A repeated column takes its last value; a short row reads blanks; extra values are ignored."""
    path = tmp_path / "odd.csv"
    path.write_text(
        "consent_source,EMAIL,email,consented_at\n"
        "form,first@example.com,second@example.com,2025-01-01,extra,values\n"
        "form,x@example.com\n",
        encoding="utf-8",
    )
    [(row, problems), (short, short_problems)] = list(scan_rows(path, NOW))
    assert problems == [] and row is not None
    assert row[1:5] == ("second@example.com", "second@example.com", None, None)
    # The short row reaches only the first of the two email columns, so that one counts.
    assert short is None
    assert [(p.line, p.column) for p in short_problems] == [(3, "consented_at")]


def test_rows_of_any_shape_read_as_zipped_dicts(tmp_path: Path) -> None:
    """Against the plain reading (each row zipped with the header into a dict), for headers
    with repeated, missing and extra columns and rows of every length."""
    chooser = random.Random(15)
    names = ["email", "first_name", "timezone", "consented_at", "consent_source", "other"]
    for attempt in range(40):
        header = chooser.sample(names, k=5) + chooser.choices(names, k=chooser.randint(0, 3))
        header = [name for name in header if name] + ["email", "consented_at", "consent_source"][
            : chooser.randint(0, 3)
        ]
        if not {"email", "consented_at", "consent_source"} <= set(header):
            header += ["email", "consented_at", "consent_source"]
        pool = [
            "a@example.com",
            "B@Example.org",
            "",
            "Ann",
            "Europe/Paris",
            "2025-01-01",
            "form",
            "bad",
            " x@example.com ",
        ]
        rows = [[chooser.choice(pool) for _ in range(chooser.randint(1, len(header) + 2))] for _ in range(30)]
        path = tmp_path / f"shape{attempt}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *rows])
        expected = [
            importer._validate(
                [dict(zip(header, row, strict=False)).get(name) or "" for name in importer.COLUMNS], line, NOW
            )
            for line, row in enumerate(rows, start=2)
        ]
        assert list(scan_rows(path, NOW)) == expected, header


def test_address_hasher_matches_address_hash() -> None:
    for secret in ("k1", "another key"):
        digest = address_hasher(secret)
        # The hash stored for forgotten people, spelled out: it must never change, or they
        # would no longer be suppressed.
        purpose_key = hmac.new(secret.encode(), b"nurture/suppression", hashlib.sha256).digest()
        for key in ("a@example.com", "ü@bücher.de", ""):
            expected = hmac.new(purpose_key, key.encode(), hashlib.sha256).hexdigest()
            assert digest(key) == address_hash(secret, key) == expected
