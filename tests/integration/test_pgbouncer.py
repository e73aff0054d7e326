"""nurture through PgBouncer in transaction pooling mode, as several machines on one
PostgreSQL are often run: each transaction may land on another server connection, so
nothing may rely on a session (prepared statements, session locks, SET). Migrations,
overlapping `send-due` processes and newsletter scheduling all go through it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from nurture.store import models as m
from tests.support.factories import active_subscribers, at
from tests.support.processes import STEP_TIMES, Project, iso
from tests.support.sendgrid_standin import SendGridStandIn

pytestmark = pytest.mark.postgres

START = at("2026-12-01 14:00")


def pool_mode(url: str) -> str:
    """What PgBouncer's admin console says its pool mode is."""
    admin = make_url(url).set(database="pgbouncer")
    with psycopg.connect(
        host=admin.host, port=admin.port, user=admin.username, dbname="pgbouncer", autocommit=True
    ) as connection:
        settings = {row[0]: row[1] for row in connection.execute("SHOW CONFIG")}
    return str(settings["pool_mode"])


def test_overlapping_passes_through_pgbouncer_send_each_step_exactly_once(
    tmp_path: Path, pgbouncer_url: str, standin: SendGridStandIn
) -> None:
    # The store is made (every migration) through PgBouncer too.
    project = Project(
        tmp_path, pgbouncer_url, standin, **{"delivery.batch_size": 50, "delivery.concurrency": 2}
    )
    assert pool_mode(pgbouncer_url) == "transaction"
    ids = active_subscribers(project.app, 600, START)
    for step_time in STEP_TIMES[:3]:
        processes = [project.start("send-due", "--now", iso(step_time)) for _ in range(3)]
        for process in processes:
            _out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert "Traceback" not in err
    received = Counter((message.to_email, message.raw_subject) for message in standin.messages())
    assert len(received) == 600 * 3, "every subscriber got every step"
    assert set(received.values()) == {1}, "nobody got any step twice"
    assert project.statuses() == Counter({m.DeliveryStatus.SENT: 1800})
    assert set(project.emails(ids).values()) == {email for email, _ in received}
