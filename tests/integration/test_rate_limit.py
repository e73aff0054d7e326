"""A provider's rate shared by every worker (nurture.providers.rate_limit): workers on separate
engines, as on separate machines, never take the same slot or two slots closer than the rate
allows; three `send-due` processes through SES together stay under the account's MaxSendRate."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from nurture.config import load_config
from nurture.providers.base import Batch, Envelope, Sender
from nurture.providers.rate_limit import SharedPause, SharedSchedule
from nurture.store import models as m
from tests.support.aws import CONFIGURATION_SET, REGION
from tests.support.factories import active_subscribers, at, open_app
from tests.support.processes import Project, iso
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.ses_standin import SesStandIn

START = at("2026-12-01 14:00")


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


def test_workers_share_one_timeline_and_never_crowd_it(tmp_path: Path, database_url: str) -> None:
    project = Project(tmp_path, database_url, None)
    rate = 200.0
    machines = [open_app(load_config(project.config_path, environ=project.env)) for _ in range(3)]
    slots: list[float] = []
    guard = threading.Lock()
    start = threading.Barrier(len(machines))

    def worker(engine: object) -> None:
        schedule = SharedSchedule(engine, "ses", rate)  # type: ignore[arg-type]
        start.wait()
        for _ in range(120):
            slot = schedule.next_slot()
            with guard:
                slots.append(slot)

    threads = [threading.Thread(target=worker, args=(machine.engine,)) for machine in machines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(slots)
    assert len(ordered) == 360
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False)]
    assert min(gaps) >= 1 / rate - 1e-6, "two slots closer than the rate allows"
    assert ordered[-1] - ordered[0] >= 359 / rate - 1e-6
    assert ordered[-1] - time.time() < 360 / rate + 1, "slots are handed out no further ahead than needed"


def test_three_processes_together_stay_under_the_ses_rate(
    tmp_path: Path, database_url: str, aws_env: dict[str, str]
) -> None:
    # The account may send 20 a second; the stand-in throttles past 24 in any second (a margin
    # for the network's jitter). Each process alone paced at 20 would send 60 a second together.
    ses = SesStandIn(max_send_rate=20).start()
    try:
        ses.enforced_rate = 24
        project = Project(
            tmp_path,
            database_url,
            None,
            **{
                "delivery.transport": "ses",
                "ses.region": REGION,
                "ses.configuration_set": CONFIGURATION_SET,
                "delivery.batch_size": 10,
                "delivery.concurrency": 2,
            },
        )
        project.env |= aws_env | {"AWS_ENDPOINT_URL_SESV2": ses.url}
        active_subscribers(project.app, 150, START)
        processes = [project.start("send-due", "--now", iso(at("2026-12-01 15:00"))) for _ in range(3)]
        for process in processes:
            _out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
        received = Counter(message.to_email for message in ses.messages())
        assert len(received) == 150 and set(received.values()) == {1}
        assert ses.throttled == 0, f"SES throttled {ses.throttled} calls: the workers went faster together"
        assert project.statuses() == Counter({m.DeliveryStatus.SENT: 150})
    finally:
        ses.stop()


def test_a_429_heard_by_one_sendgrid_worker_holds_the_others_until_the_reset(
    tmp_path: Path, database_url: str, standin: SendGridStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, database_url, standin)
    machines = [open_app(load_config(project.config_path, environ=project.env)) for _ in range(2)]
    first, second = (machine.transport for machine in machines)
    standin.fail_next(status=429, reset_in=1.5)
    # The second worker asks once the first has recorded the pause, not merely once the 429 has
    # left the stand-in: in between, a request is free to go (it would meet its own 429).
    recorded = threading.Event()
    hold_until = SharedPause.hold_until

    def hold_until_then_say_so(pause: SharedPause, moment: float) -> None:
        hold_until(pause, moment)
        recorded.set()

    monkeypatch.setattr(SharedPause, "hold_until", hold_until_then_say_so)
    batch = Batch(
        Sender("hello@example.com", "Practice"),
        "text",
        "<p>html</p>",
        (Envelope("1", "a@example.com", None, "Hi"),),
    )
    before = time.time()
    heard = threading.Thread(target=first.send, args=(batch,))
    heard.start()
    assert recorded.wait(timeout=10), "the worker that heard the 429 recorded no pause"
    [outcome] = second.send(replace(batch, envelopes=(Envelope("2", "b@example.com", None, "Hi"),)))
    heard.join()
    assert outcome.status == "sent"
    arrivals = sorted(request.received_at for request in standin.requests)
    assert len(arrivals) == 2, "after the 429, one accepted request from each worker"
    # The reset is at least 1.5 s after the 429 (rounded up to a whole second), so after
    # `before`: the worker that never heard the 429 still waited for it instead of asking at once.
    assert min(arrivals) >= before + 1.5, "the second worker did not wait for the reset"
