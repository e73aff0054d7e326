"""The exactly-once trials (tests/integration/test_exactly_once.py) on the other providers:
overlapping `nurture send-due` processes, kill -9 in mid-run and SIGTERM of the daemon,
with Amazon SES (boto3 against the SES v2 stand-in) and an SMTP relay (aiosmtpd with
STARTTLS). Each server counts what it received; the store must agree with it."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nurture.store import models as m
from tests.support.aws import CONFIGURATION_SET, REGION
from tests.support.factories import active_subscribers, at
from tests.support.processes import STEP_TIMES, Project, iso
from tests.support.ses_standin import SesStandIn
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer

START = at("2026-12-01 14:00")
PROVIDERS = ["ses", "smtp"]


class Server:
    """One provider's server, as the trials see it: messages received, requests, latency."""

    def __init__(self, provider: str, folder: Path) -> None:
        self.provider = provider
        self.ses: SesStandIn | None = None
        self.smtp: SmtpServer | None = None
        if provider == "ses":
            self.ses = SesStandIn(max_send_rate=5000).start()
        else:
            (folder / "tls").mkdir()
            self.smtp = SmtpServer(folder / "tls").__enter__()

    def close(self) -> None:
        if self.ses is not None:
            self.ses.stop()
        if self.smtp is not None:
            self.smtp.__exit__(None, None, None)

    def set_latency(self, seconds: float) -> None:
        if self.ses is not None:
            self.ses.latency = seconds
        if self.smtp is not None:
            self.smtp.latency = seconds

    @property
    def request_count(self) -> int:
        return self.ses.request_count if self.ses is not None else self.smtp.request_count  # type: ignore[union-attr]

    def received(self) -> list[tuple[str, str]]:
        """(recipient, subject) of every email the server took."""
        if self.ses is not None:
            return [(message.to_email, message.raw_subject) for message in self.ses.messages()]
        assert self.smtp is not None
        return [(message.rcpt_to, message.raw_subject) for message in self.smtp.messages()]

    def project(
        self, tmp_path: Path, database_url: str, aws_env: dict[str, str], **overrides: Any
    ) -> Project:
        settings: dict[str, Any] = {"delivery.transport": self.provider, **overrides}
        if self.ses is not None:
            settings |= {"ses.region": REGION, "ses.configuration_set": CONFIGURATION_SET}
        else:
            assert self.smtp is not None
            settings |= {
                "smtp.host": "127.0.0.1",
                "smtp.port": self.smtp.port,
                "smtp.username": USERNAME,
                "smtp.bounce_domain": "bounces.example.org",
                "smtp.pool_size": 2,
            }
        project = Project(tmp_path, database_url, None, **settings)
        if self.ses is not None:
            project.env |= aws_env | {"AWS_ENDPOINT_URL_SESV2": self.ses.url}
        else:
            assert self.smtp is not None
            project.env |= {"NURTURE_SMTP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(self.smtp.cert_file)}
        return project


@pytest.fixture(params=PROVIDERS)
def server(request: pytest.FixtureRequest, tmp_path: Path, aws_env: dict[str, str]) -> Iterator[Server]:
    made = Server(request.param, tmp_path)
    yield made
    made.close()


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


def test_overlapping_send_due_processes_send_each_step_exactly_once(
    tmp_path: Path, database_url: str, server: Server, aws_env: dict[str, str]
) -> None:
    project = server.project(
        tmp_path, database_url, aws_env, **{"delivery.batch_size": 50, "delivery.concurrency": 2}
    )
    ids = active_subscribers(project.app, 300, START)
    for step_time in STEP_TIMES:
        processes = [project.start("send-due", "--now", iso(step_time)) for _ in range(3)]
        for process in processes:
            _out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert "Traceback" not in err
    received = Counter(server.received())
    assert len(received) == 300 * 5, "every subscriber got every step"
    assert set(received.values()) == {1}, "nobody got any step twice"
    assert project.statuses() == Counter({m.DeliveryStatus.SENT: 1500})
    assert set(project.emails(ids).values()) == {email for email, _ in received}


@pytest.mark.parametrize("kill_after_requests", [0, 15])
def test_kill_9_mid_run_never_duplicates_and_loses_only_reported_stuck(
    tmp_path: Path, server: Server, aws_env: dict[str, str], kill_after_requests: int
) -> None:
    server.set_latency(0.05)
    project = server.project(
        tmp_path,
        f"sqlite:///{tmp_path / 'nurture.db'}",
        aws_env,
        **{"delivery.batch_size": 20, "delivery.concurrency": 2},
    )
    ids = active_subscribers(project.app, 200, START)
    first = project.start("send-due", "--now", iso(STEP_TIMES[0]))
    deadline = time.monotonic() + 60
    while server.request_count < kill_after_requests and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.005)
    if kill_after_requests == 0:
        time.sleep(0.9)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL

    stuck_before = project.claimed_subscribers()
    later = project.run("send-due", "--now", iso(STEP_TIMES[0] + timedelta(minutes=15)))
    assert later.returncode == 0, later.stderr
    received = Counter(email for email, _ in server.received())
    assert set(received.values()) <= {1}, "no address received step 1 twice"
    emails = project.emails(ids)
    assert project.claimed_subscribers() == stuck_before, "stuck claims are never resent by themselves"
    missing = {subscriber_id for subscriber_id in ids if emails[subscriber_id] not in received}
    assert missing <= stuck_before, "nothing is lost except claims reported as stuck"
    for email in emails.values():
        assert email not in later.stdout + later.stderr, "no address in command output"


def test_daemon_stops_on_sigterm_mid_pass_leaving_no_claim(
    tmp_path: Path, server: Server, aws_env: dict[str, str]
) -> None:
    server.set_latency(0.1)
    window = {"delivery.weekdays_only": False, "delivery.batch_size": 10, "delivery.concurrency": 1}
    project = server.project(tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", aws_env, **window)
    now = datetime.now(START.tzinfo)
    offset = 12 - now.hour
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
    active_subscribers(project.app, 200, now - timedelta(minutes=1), timezone_name=zone)
    daemon = project.start("run", "--interval", "5")
    deadline = time.monotonic() + 60
    while server.request_count < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.request_count >= 5, "the daemon started sending"
    daemon.send_signal(signal.SIGTERM)
    _out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert project.claimed_subscribers() == set(), "no claim left behind"
    sent = project.statuses()[m.DeliveryStatus.SENT]
    assert 0 < sent < 200
    assert sent == len(server.received())
    rest = project.run("send-due")
    assert rest.returncode == 0, rest.stderr
    received = Counter(email for email, _ in server.received())
    assert len(received) == 200 and set(received.values()) == {1}
