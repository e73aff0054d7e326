"""Starting a series for people already on the list, pause and resume, and the goal exit."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from nurture.app import App
from nurture.audience.people import tag
from nurture.cli.main import cli
from nurture.errors import InputError, NotFound
from nurture.providers.recording import RecordingTransport
from nurture.sending.sendpass import send_due
from nurture.series.control import is_paused, pause, resume, start
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import REPO, SECRET, active_subscribers, at, make_app

START = at("2026-12-01 14:00")  # Tuesday, 09:00 in New York
BOOKING_SUBJECT = "What a first consultation about KAP looks like"  # kap-intro step 5


def project_with_manual_series(tmp_path: Path) -> App:
    """The repo's content plus 'winter-series': two emails, trigger manual, stop_on_tags [booked]."""
    shutil.copytree(REPO / "campaigns", tmp_path / "campaigns")
    folder = tmp_path / "campaigns" / "winter-series"
    folder.mkdir()
    for name in ("01-what-is-kap.md", "02-the-neuroscience.md"):
        shutil.copy(REPO / "campaigns" / "kap-intro" / name, folder / name)
    spec = {
        "title": "Winter series",
        "trigger": "manual",
        "stop_on_tags": ["booked"],
        "steps": [
            {"file": "01-what-is-kap.md", "delay_days": 0},
            {"file": "02-the-neuroscience.md", "delay_days": 2},
        ],
    }
    (folder / "campaign.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    app = make_app(tmp_path)
    app.use_transport(RecordingTransport())
    return app


def person(
    app: App,
    address: str,
    zone_name: str,
    now: datetime,
    *,
    status: str = m.SubscriberStatus.ACTIVE,
    tags: tuple[str, ...] = (),
) -> int:
    with transaction(app.engine) as session:
        row = m.Subscriber(
            email=address,
            email_key=address,
            first_name=None,
            timezone=zone_name,
            status=status,
            source="test",
            created_at=now,
            confirmed_at=now if status == m.SubscriberStatus.ACTIVE else None,
            status_changed_at=now,
            confirm_nonce=1,
        )
        session.add(row)
        session.flush()
        for name in tags:
            session.add(m.SubscriberTag(subscriber_id=row.id, tag=name, created_at=now))
        return row.id


def deliveries(app: App, stream: str | None = None) -> list[m.Delivery]:
    with transaction(app.engine) as session:
        query = select(m.Delivery).order_by(m.Delivery.claimed_at, m.Delivery.id)
        if stream:
            query = query.where(m.Delivery.stream == stream)
        return list(session.scalars(query))


def enrollments(app: App, campaign: str) -> dict[int, m.Enrollment]:
    with transaction(app.engine) as session:
        return {
            row.subscriber_id: row
            for row in session.scalars(select(m.Enrollment).where(m.Enrollment.campaign == campaign))
        }


def run(app: App, start_at: datetime, end: datetime, every: timedelta = timedelta(minutes=30)) -> None:
    moment = start_at
    while moment <= end:
        send_due(app, moment)
        moment += every


# ---------------------------------------------------------------- start


def test_start_enrolls_active_subscribers_from_that_moment_each_in_their_window(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    now = at("2026-11-28 12:00")
    ny = [person(app, f"ny{i}@example.com", "America/New_York", now) for i in range(2)]
    auckland = person(app, "kiwi@example.com", "Pacific/Auckland", now)
    person(app, "pending@example.com", "America/New_York", now, status=m.SubscriberStatus.PENDING)
    person(app, "gone@example.com", "America/New_York", now, status=m.SubscriberStatus.UNSUBSCRIBED)
    person(app, "booked@example.com", "America/New_York", now, tags=("booked",))
    begin = at("2026-12-03 14:00")  # 09:00 in New York; 03:00 on Dec 4 in Auckland (window closed)

    result = start(app, "winter-series", now=now, at=begin)

    assert (result.matched, result.enrolled, result.unchanged, result.paused) == (4, 3, 1, False)
    assert set(enrollments(app, "winter-series")) == {*ny, auckland}  # the booked one is left out
    assert {row.next_due_at for row in enrollments(app, "winter-series").values()} == {begin}
    run(app, now, begin - timedelta(minutes=30))
    assert deliveries(app, "winter-series") == []  # nothing before the start
    run(app, begin, at("2026-12-04 23:30"))
    first_steps = {
        row.subscriber_id: row.claimed_at for row in deliveries(app, "winter-series") if row.step == 1
    }
    assert first_steps == {ny[0]: begin, ny[1]: begin, auckland: at("2026-12-03 20:00")}  # 09:00 NZDT Dec 4
    with transaction(app.engine) as session:
        assert session.get(m.CampaignState, "winter-series").started_at == begin  # type: ignore[union-attr]


def test_start_with_a_tag_enrolls_only_tagged_subscribers(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    now = at("2026-11-28 12:00")
    tagged = [
        person(app, f"open-day{i}@example.com", "Europe/London", now, tags=("open-day",)) for i in range(2)
    ]
    person(app, "other@example.com", "Europe/London", now)
    result = start(app, "winter-series", now=now, tag="Open-Day")
    assert (result.matched, result.enrolled) == (2, 2)
    assert set(enrollments(app, "winter-series")) == set(tagged)


def test_start_twice_keeps_everyones_place(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    now = at("2026-12-01 14:00")
    someone = person(app, "ny@example.com", "America/New_York", now)
    assert start(app, "winter-series", now=now).enrolled == 1
    send_due(app, now)
    assert enrollments(app, "winter-series")[someone].next_step == 2
    again = start(app, "winter-series", now=now + timedelta(hours=1))
    assert (again.enrolled, again.unchanged) == (0, 1)
    assert enrollments(app, "winter-series")[someone].next_step == 2
    run(app, now, now + timedelta(days=4))
    assert [row.step for row in deliveries(app, "winter-series")] == [1, 2]


def test_start_refuses_unknown_campaigns_and_past_times(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    with pytest.raises(NotFound, match="campaigns: kap-intro, winter-series"):
        start(app, "no-such-series", now=START)
    with pytest.raises(InputError, match="in the past"):
        start(app, "winter-series", now=START, at=START - timedelta(hours=1))
    with pytest.raises(InputError, match="tag"):
        start(app, "winter-series", now=START, tag="not a tag!")


# ---------------------------------------------------------------- pause and resume


def test_pause_holds_the_series_and_resume_releases_it_inside_the_window(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 2, START)  # New York, kap-intro step 1 due now
    assert pause(app, "kap-intro", START) is True
    assert pause(app, "kap-intro", START) is False  # already paused
    assert is_paused(app, "kap-intro")
    run(app, START, at("2026-12-03 12:00"))
    assert deliveries(app) == []
    assert resume(app, "kap-intro", at("2026-12-03 12:00")) is True  # 07:00 in New York
    assert resume(app, "kap-intro", at("2026-12-03 12:00")) is False
    run(app, at("2026-12-03 12:00"), at("2026-12-03 16:00"))
    rows = deliveries(app)
    assert sorted(row.subscriber_id for row in rows) == sorted(ids)
    assert {row.claimed_at for row in rows} == {at("2026-12-03 14:00")}  # the window opened at 09:00 New York


def test_pause_in_the_middle_of_the_series_and_resume_later(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 1, START)
    run(app, START, at("2026-12-02 00:00"))
    assert [row.step for row in deliveries(app)] == [1]
    pause(app, "kap-intro", at("2026-12-02 00:00"))
    run(app, at("2026-12-02 00:00"), at("2026-12-08 00:00"))  # step 2 fell due on Dec 4
    assert [row.step for row in deliveries(app)] == [1]
    resume(app, "kap-intro", at("2026-12-08 00:00"))
    run(app, at("2026-12-08 00:00"), at("2026-12-13 00:00"))
    rows = deliveries(app)
    assert [row.step for row in rows] == [1, 2, 3]
    assert rows[1].claimed_at == at("2026-12-08 14:00")  # next window after resuming
    assert rows[2].claimed_at - rows[1].claimed_at >= timedelta(days=4)  # spacing kept after the pause


def test_pause_and_resume_refuse_unknown_campaigns(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(NotFound):
        pause(app, "nope", START)
    with pytest.raises(NotFound):
        resume(app, "nope", START)


# ---------------------------------------------------------------- goal exit


def test_goal_exit_booked_never_gets_the_book_a_consultation_email(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    transport = RecordingTransport()
    app.use_transport(transport)
    assert app.campaigns["kap-intro"].stop_on_tags == ("booked",)
    assert app.campaigns["kap-intro"].step(5).email.subject == BOOKING_SUBJECT
    booked_by_command, booked_elsewhere, reader = active_subscribers(app, 3, START)
    # Steps 1-4 arrive on days 0, 3, 7 and 11.
    run(app, START, at("2026-12-13 00:00"), timedelta(hours=1))
    assert Counter(row.subscriber_id for row in deliveries(app)) == {
        booked_by_command: 4,
        booked_elsewhere: 4,
        reader: 4,
    }

    # `nurture subscribers tag EMAIL booked` ends the series at once...
    assert tag(app, "person0@example.com", "booked", at("2026-12-13 00:00")) == ["kap-intro"]
    assert enrollments(app, "kap-intro")[booked_by_command].status == m.EnrollmentStatus.STOPPED
    # ...and a tag written by another path (an import, the web) is honoured by the pass itself.
    with transaction(app.engine) as session:
        session.add(
            m.SubscriberTag(subscriber_id=booked_elsewhere, tag="booked", created_at=at("2026-12-13 00:00"))
        )
    assert enrollments(app, "kap-intro")[booked_elsewhere].status == m.EnrollmentStatus.ACTIVE

    run(app, at("2026-12-13 00:00"), at("2026-12-30 00:00"), timedelta(hours=1))
    steps = Counter(row.subscriber_id for row in deliveries(app))
    assert steps == {booked_by_command: 4, booked_elsewhere: 4, reader: 5}
    assert enrollments(app, "kap-intro")[booked_elsewhere].status == m.EnrollmentStatus.STOPPED
    to_booked = [
        r.subject for r in transport.sent if r.to_email in ("person0@example.com", "person1@example.com")
    ]
    assert BOOKING_SUBJECT not in to_booked and len(to_booked) == 8
    assert [r.subject for r in transport.sent if r.to_email == "person2@example.com"][-1] == BOOKING_SUBJECT


def test_someone_booked_before_the_series_starts_is_never_enrolled(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    booked = person(app, "booked@example.com", "America/New_York", START, tags=("booked",))
    start(app, "winter-series", now=START)
    run(app, START, at("2026-12-05 00:00"), timedelta(hours=1))
    assert booked not in enrollments(app, "winter-series")
    assert deliveries(app) == []


# ---------------------------------------------------------------- the commands


def test_campaign_commands(tmp_path: Path) -> None:
    app = project_with_manual_series(tmp_path)
    person(app, "ny@example.com", "America/New_York", START)
    env = {"NURTURE_CONFIG": str(tmp_path / "config.yaml"), "NURTURE_SECRET_KEY": SECRET}

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), env=env, prog_name="nurture")
        return result.exit_code, result.output

    code, out = invoke("campaign", "pause", "winter-series", "--now", "2026-12-01T14:00:00Z")
    assert (code, out.strip()) == (0, "winter-series: paused")
    # --at is read in the practice's zone (America/Los_Angeles): 09:00 PST is 17:00Z.
    code, out = invoke(
        "campaign", "start", "winter-series", "--at", "2026-12-02 09:00", "--now", "2026-12-01T14:00:00Z"
    )
    assert code == 0, out
    assert "1 subscriber(s) enrolled from 2026-12-02 09:00 (America/Los_Angeles)" in out
    assert "is paused" in out
    assert {row.next_due_at for row in enrollments(app, "winter-series").values()} == {at("2026-12-02 17:00")}
    code, out = invoke("campaign", "resume", "winter-series", "--now", "2026-12-01T14:00:00Z")
    assert (code, out.strip()) == (0, "winter-series: resumed")
    code, out = invoke("campaign", "start", "nope")
    assert code == 1 and out.startswith("error: no campaign 'nope'")
    code, out = invoke("campaign", "start", "winter-series", "--at", "next week")
    assert code == 1 and "error: --at" in out
