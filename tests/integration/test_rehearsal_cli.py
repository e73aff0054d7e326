"""simulate and send-due --dry-run change nothing; deliveries --stuck and release work from the CLI."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.app import App
from nurture.cli.main import cli
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, active_subscribers, at, make_app

START = at("2026-12-01 14:00")


def nurture(app: App, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(app.config.path), *args], env={"NURTURE_SECRET_KEY": SECRET}
    )
    return result.exit_code, result.output


def snapshot(app: App) -> tuple[object, ...]:
    with transaction(app.engine) as session:
        return (
            session.scalar(select(func.count()).select_from(m.Delivery)),
            tuple(
                session.execute(
                    select(
                        m.Enrollment.id, m.Enrollment.next_step, m.Enrollment.next_due_at, m.Enrollment.status
                    ).order_by(m.Enrollment.id)
                )
            ),
            sorted(path.name for path in app.config.outbox_dir.glob("*"))
            if app.config.outbox_dir.exists()
            else [],
        )


def test_simulate_lists_each_email_inside_the_window_and_changes_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 1, START, timezone_name="Asia/Kolkata", prefix="kolkata")
    active_subscribers(app, 1, START, timezone_name="America/Los_Angeles", prefix="la")
    before = snapshot(app)
    code, output = nurture(app, "simulate", "--days", "21", "--now", START.isoformat())
    assert code == 0, output
    lines = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d) (\S+)  (\S+@\S+)  (.+)$", output, re.M)
    assert len(lines) == 10
    zones = {"kolkata0@example.com": "Asia/Kolkata", "la0@example.com": "America/Los_Angeles"}
    for stamp, zone_name, email, _subject in lines:
        assert zone_name == zones[email]
        assert 9 <= int(stamp[11:13]) < 17, (stamp, email)  # local times, inside the window
    subjects = [step.email.subject for step in app.campaigns["kap-intro"].steps]
    assert [subject for _, _, email, subject in lines if email == "la0@example.com"] == subjects
    assert "Z " not in output and "step 1" not in output
    assert "10 email(s) in 21 day(s); nothing was sent or changed" in output
    assert snapshot(app) == before


def test_simulate_summarizes_per_day_for_big_lists(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 40, START)
    code, output = nurture(app, "simulate", "--days", "5", "--now", START.isoformat())
    assert code == 0, output
    first, second = (step.email.subject for step in app.campaigns["kap-intro"].steps[:2])
    assert "per day in America/Los_Angeles:" in output
    assert f"2026-12-01  {first}: 40" in output
    assert f"2026-12-04  {second}: 40" in output
    assert "80 email(s)" in output


def test_dry_run_shows_the_pass_and_changes_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    active_subscribers(app, 3, START)
    before = snapshot(app)
    code, output = nurture(app, "send-due", "--dry-run", "--now", "2026-12-01T15:00:00Z")
    assert code == 0, output
    assert re.search(r"would send\s+3\s+kap-intro step 1: ", output)
    assert "dry run: would send 3; nothing was sent or changed" in output
    assert snapshot(app) == before
    code, output = nurture(app, "send-due", "--now", "2026-12-01T15:00:00Z")
    assert code == 0 and output.startswith("sent 3,")


def test_stuck_claims_are_listed_then_released_by_age_and_sent_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 3, START)
    with transaction(app.engine) as session:
        # A sender died after claiming step 1 for the first person (kill -9 leaves exactly this).
        session.add(
            m.Delivery(
                subscriber_id=ids[0],
                stream="kap-intro",
                step=1,
                step_key="01-what-is-kap",
                series_version=1,
                status=m.DeliveryStatus.CLAIMED,
                worker="dead:1",
                claimed_at=at("2026-12-01 15:00"),
            )
        )
        enrollment = session.scalar(select(m.Enrollment).where(m.Enrollment.subscriber_id == ids[0]))
        enrollment.next_step = 2  # type: ignore[union-attr]
        enrollment.next_step_key = "02-the-neuroscience"  # type: ignore[union-attr]
        enrollment.next_due_at = at("2026-12-04 15:00")  # type: ignore[union-attr]
    code, output = nurture(app, "send-due", "--now", "2026-12-01T15:30:00Z")
    assert code == 0 and output.startswith("sent 2,") and "stuck 1" in output
    code, output = nurture(app, "deliveries", "--stuck", "--now", "2026-12-01T15:30:00Z")
    assert code == 0 and "kap-intro step 1" in output and "1 stuck delivery" in output
    code, output = nurture(
        app, "deliveries", "release", "--older-than", "2h", "--now", "2026-12-01T15:30:00Z"
    )
    assert code == 0 and "released 0 deliveries" in output  # claimed 30 minutes ago: not old enough
    code, output = nurture(
        app, "deliveries", "release", "--older-than", "20m", "--now", "2026-12-01T15:30:00Z"
    )
    assert code == 0 and "released 1 delivery" in output
    code, output = nurture(app, "send-due", "--now", "2026-12-01T15:31:00Z")
    assert code == 0 and output.startswith("sent 1,")
    with transaction(app.engine) as session:
        sent = Counter(
            session.execute(
                select(m.Delivery.subscriber_id, m.Delivery.step).where(
                    m.Delivery.status == m.DeliveryStatus.SENT
                )
            )
        )
    assert sent == Counter({(ids[0], 1): 1, (ids[1], 1): 1, (ids[2], 1): 1})


def test_release_needs_ids_or_an_age(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    code, output = nurture(app, "deliveries", "release")
    assert code == 1 and "name delivery ids, or give --older-than" in output
    code, output = nurture(app, "deliveries", "release", "--older-than", "soon")
    assert code == 1 and "use a number and a unit" in output


def test_releasing_a_sent_or_unknown_id_is_refused_and_releases_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    ids = active_subscribers(app, 2, START)
    with transaction(app.engine) as session:
        session.add(
            m.Delivery(
                subscriber_id=ids[0],
                stream="kap-intro",
                step=1,
                status=m.DeliveryStatus.CLAIMED,
                worker="dead:1",
                claimed_at=START,
            )
        )
        session.add(
            m.Delivery(
                subscriber_id=ids[1],
                stream="kap-intro",
                step=1,
                status=m.DeliveryStatus.SENT,
                worker="w:1",
                claimed_at=START,
            )
        )
    with transaction(app.engine) as session:
        stuck_id, sent_id = session.scalars(select(m.Delivery.id).order_by(m.Delivery.id)).all()
    code, output = nurture(app, "deliveries", "release", str(stuck_id), str(sent_id), "999")
    assert code == 1
    assert f"deliveries {sent_id}, 999: not stuck or failed" in output and "nothing was released" in output
    with transaction(app.engine) as session:
        assert session.get(m.Delivery, stuck_id).status == m.DeliveryStatus.CLAIMED  # type: ignore[union-attr]
