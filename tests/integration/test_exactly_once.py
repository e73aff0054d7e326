"""Exactly once, proved with real processes: overlapping `nurture send-due` runs on
SQLite and PostgreSQL, kill -9 in mid-run, and SIGTERM of the daemon.

Every email goes through the SendGrid stand-in (a real HTTP server), which counts
what it received; the store must agree with it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at
from tests.support.processes import STEP_TIMES, Project, iso, midday_zone
from tests.support.sendgrid_standin import SendGridStandIn

START = at("2026-12-01 14:00")  # 09:00 in New York, where the test subscribers live


@pytest.fixture
def database_url(both_stores: str) -> str:
    """Overlapping processes on both stores."""
    return both_stores


@pytest.mark.parametrize("workers", [2, 4])
def test_overlapping_send_due_processes_send_each_step_exactly_once(
    tmp_path: Path, database_url: str, standin: SendGridStandIn, workers: int
) -> None:
    project = Project(
        tmp_path, database_url, standin, **{"delivery.batch_size": 100, "delivery.concurrency": 2}
    )
    ids = active_subscribers(project.app, 2000, START)
    for step_time in STEP_TIMES:
        processes = [project.start("send-due", "--now", iso(step_time)) for _ in range(workers)]
        results = [process.communicate(timeout=300) for process in processes]
        for process, (_out, err) in zip(processes, results, strict=True):
            assert process.returncode == 0, err
            assert "Traceback" not in err
    received = Counter((message.to_email, message.raw_subject) for message in standin.messages())
    assert len(received) == 2000 * 5, "every subscriber got every step"
    assert set(received.values()) == {1}, "nobody got any step twice"
    assert project.statuses() == Counter({m.DeliveryStatus.SENT: 10000})
    assert set(project.emails(ids).values()) == {email for email, _ in received}


@pytest.mark.parametrize("kill_after_requests", [0, 2, 7])
def test_kill_9_mid_run_never_duplicates_and_loses_only_reported_stuck(
    tmp_path: Path, database_url: str, standin: SendGridStandIn, kill_after_requests: int
) -> None:
    standin.latency = 0.15
    project = Project(
        tmp_path, database_url, standin, **{"delivery.batch_size": 20, "delivery.concurrency": 2}
    )
    ids = active_subscribers(project.app, 400, START)
    first = project.start("send-due", "--now", iso(STEP_TIMES[0]))
    deadline = time.monotonic() + 60
    while (
        standin.request_count < kill_after_requests and time.monotonic() < deadline and first.poll() is None
    ):
        time.sleep(0.005)
    if kill_after_requests == 0:
        time.sleep(0.9)  # somewhere between start-up, the first claim and the first request
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL

    stuck_before = project.claimed_subscribers()
    # The next run (as cron would, some minutes later) sends everything not claimed.
    later = project.run("send-due", "--now", iso(STEP_TIMES[0] + timedelta(minutes=15)))
    assert later.returncode == 0, later.stderr
    assert f"stuck {len(stuck_before)}" in later.stdout

    received = Counter(message.to_email for message in standin.messages())
    assert set(received.values()) <= {1}, "no address received step 1 twice"
    emails = project.emails(ids)
    stuck_now = project.claimed_subscribers()
    assert stuck_now == stuck_before, "stuck claims are never resent by themselves"
    missing = {subscriber_id for subscriber_id in ids if emails[subscriber_id] not in received}
    assert missing <= stuck_now, "nothing is lost except claims reported as stuck"
    statuses = project.statuses()
    assert statuses[m.DeliveryStatus.SENT] + statuses[m.DeliveryStatus.CLAIMED] == 400

    listing = project.run("deliveries", "--stuck", "--now", iso(STEP_TIMES[0] + timedelta(minutes=20)))
    assert listing.returncode == 0
    assert f"{len(stuck_now)} stuck deliver" in listing.stdout
    for email in emails.values():
        assert email not in listing.stdout + later.stdout + later.stderr, "no address in command output"


def test_daemon_stops_on_sigterm_mid_pass_leaving_no_claim(tmp_path: Path, standin: SendGridStandIn) -> None:
    standin.latency = 0.25
    window = {"delivery.weekdays_only": False, "delivery.batch_size": 10, "delivery.concurrency": 1}
    project = Project(tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", standin, **window)
    now = datetime.now(START.tzinfo)
    active_subscribers(project.app, 300, now - timedelta(minutes=1), timezone_name=midday_zone(now))
    daemon = project.start("run", "--interval", "5")
    deadline = time.monotonic() + 60
    while standin.request_count < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert standin.request_count >= 3, "the daemon started sending"
    daemon.send_signal(signal.SIGTERM)
    out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert project.claimed_subscribers() == set(), "no claim left behind"
    sent = project.statuses()[m.DeliveryStatus.SENT]
    assert 0 < sent < 300
    assert sent == len(standin.messages())
    # What the daemon did not get to is still due and goes out once.
    rest = project.run("send-due")
    assert rest.returncode == 0, rest.stderr
    received = Counter(message.to_email for message in standin.messages())
    assert len(received) == 300 and set(received.values()) == {1}


def test_bad_api_key_exits_non_zero_with_a_clear_message_and_claims_nothing(
    tmp_path: Path, standin: SendGridStandIn
) -> None:
    project = Project(tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", standin)
    project.env["SENDGRID_API_KEY"] = "SG.revoked"
    active_subscribers(project.app, 30, START)
    result = project.run("send-due", "--now", iso(STEP_TIMES[0]))
    assert result.returncode == 3
    assert "SendGrid rejected the API key" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.statuses() == Counter()


def test_two_daemons_share_one_postgres_and_send_each_email_once(
    tmp_path: Path, postgres_url: str, standin: SendGridStandIn
) -> None:
    standin.latency = 0.1  # a first pass of over a second: the second daemon is up well before it ends
    window = {"delivery.weekdays_only": False, "delivery.batch_size": 25, "delivery.concurrency": 2}
    project = Project(tmp_path, postgres_url, standin, **window)
    now = datetime.now(START.tzinfo)
    active_subscribers(project.app, 600, now - timedelta(minutes=1), timezone_name=midday_zone(now))
    daemons = [project.start("run", "--interval", "5") for _ in range(2)]
    deadline = time.monotonic() + 90
    while project.statuses()[m.DeliveryStatus.SENT] < 600 and time.monotonic() < deadline:
        time.sleep(0.2)
    for daemon in daemons:
        daemon.send_signal(signal.SIGTERM)
    outputs = [daemon.communicate(timeout=30) for daemon in daemons]
    for daemon, (_, err) in zip(daemons, outputs, strict=True):
        assert daemon.returncode == 0, err
    received = Counter(message.to_email for message in standin.messages())
    assert len(received) == 600 and set(received.values()) == {1}
    assert project.statuses() == Counter({m.DeliveryStatus.SENT: 600})
    with transaction(project.app.engine) as session:
        workers = set(session.scalars(select(m.Delivery.worker)))
    assert len(workers) == 2, "both daemons took a share of the work"
