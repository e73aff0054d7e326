"""The benchmarks' yardstick, benchmarks/minimal_send.py, does what its ratio claims.

Plain, it sends each due reader one bare email and writes one ledger row each. With
--lawful it must also give every email its own signed unsubscribe link (one that
nurture's own unsubscribe page accepts, for the right person), the one-click headers,
and move each enrollment on: otherwise "of the lawful minimal" would compare nurture
with a sender that breaks the law or never leaves the first step.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import reading
from nurture.tokens import read_unsubscribe_token
from tests.support.factories import SECRET, active_subscribers, at, make_app
from tests.support.sendgrid_standin import SendGridStandIn

REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "benchmarks" / "minimal_send.py"
NOW = at("2026-12-01 15:00")
PEOPLE = 1_234  # two pages of 1,000, the second one short


def _run(url: str, server: SendGridStandIn, *flags: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "NURTURE_SECRET_KEY": SECRET, "NO_PROXY": "127.0.0.1,localhost"}
    done = subprocess.run(
        [sys.executable, str(MINIMAL), url, server.url, NOW.isoformat(), *flags],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"minimal: sent {PEOPLE}"


def _store(tmp_path: Path, url: str) -> App:
    app = make_app(tmp_path, database_url=url)
    active_subscribers(app, PEOPLE, NOW - timedelta(hours=1))
    return app


def _enrollments(app: App) -> list[tuple[int, int, object]]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Enrollment.subscriber_id, m.Enrollment.next_step, m.Enrollment.next_due_at)
        ).all()
    return [tuple(row) for row in rows]


def _sent_rows(app: App) -> dict[int, str]:
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.subscriber_id, m.Delivery.status).where(m.Delivery.stream == "minimal")
        ).all()
    return {subscriber_id: status for subscriber_id, status in rows}


def test_the_lawful_minimal_sender_signs_each_link_and_moves_each_series_on(
    tmp_path: Path, both_stores: str
) -> None:
    app = _store(tmp_path, both_stores)
    before = {row[0]: row for row in _enrollments(app)}
    with SendGridStandIn(api_key="SG.bench") as server:
        _run(both_stores, server, "--lawful")
        messages = server.messages()
        requests = server.delivered_requests
    assert len(messages) == PEOPLE
    assert len(requests) == 2
    for request in requests:
        assert request.body["headers"] == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    seen = set()
    for message in messages:
        subscriber_id = int(message.custom_args["s"])
        seen.add(subscriber_id)
        link = message.headers["List-Unsubscribe"].strip("<>")
        assert link.startswith("https://example.com/n/unsubscribe/")
        claim = read_unsubscribe_token(SECRET, link.rsplit("/", 1)[1])
        assert (claim.subscriber_id, claim.stream) == (subscriber_id, "minimal")
        assert message.text is not None and message.text.endswith(f"Unsubscribe: {link}")
    assert len(seen) == PEOPLE
    assert set(_sent_rows(app).values()) == {m.DeliveryStatus.SENT}
    after = _enrollments(app)
    assert len(after) == len(before) == PEOPLE
    for subscriber_id, next_step, next_due_at in after:
        assert next_step == before[subscriber_id][1] + 1
        assert next_due_at == NOW + timedelta(days=7)


def test_the_plain_minimal_sender_sends_bare_emails_and_moves_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nurture.db'}"
    app = _store(tmp_path, url)
    before = sorted(_enrollments(app))
    with SendGridStandIn(api_key="SG.bench") as server:
        _run(url, server)
        messages = server.messages()
    assert len(messages) == PEOPLE
    assert all("List-Unsubscribe" not in message.headers for message in messages)
    assert len(_sent_rows(app)) == PEOPLE
    assert sorted(_enrollments(app)) == before
