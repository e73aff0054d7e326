"""How long a signed batch of 1,000 SendGrid events takes, on SQLite.

    .venv/bin/python benchmarks/bench_webhook.py [--rounds 7] [--events 1000]

Three measurements, each over fresh events (nothing is a duplicate):
  process   nurture.web.webhooks.process_sendgrid_events: normalize, tie to deliveries, store, suppress
  handle    the same plus signature check and JSON parsing (what one POST does)
  http      a real POST to a live uvicorn server on 127.0.0.1, answer included

The batch mixes processed / delivered / open / click events for 200 sent deliveries,
with 2% hard bounces that suppress their subscriber.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid, process_sendgrid_events
from tests.support.factories import active_subscribers, at
from tests.support.webserver import WebhookSigner, live_web, sg_event, webhook_body

KINDS = ["processed", "delivered", "open", "click"]


def make_events(round_no: int, count: int, deliveries: list[int]) -> list[dict]:
    events = []
    for n in range(count):
        number = round_no * 1_000_000 + n
        delivery = deliveries[n % len(deliveries)]
        if n % 50 == 0:
            events.append(
                sg_event(
                    "bounce",
                    number,
                    delivery_id=delivery,
                    type="bounce",
                    status="5.1.1",
                    reason="550 5.1.1 unknown user",
                )
            )
        else:
            events.append(
                sg_event(
                    KINDS[n % 4],
                    number,
                    delivery_id=delivery,
                    url="https://www.example.com/articles/what-is-kap",
                )
            )
    return events


def report(name: str, seconds: list[float], count: int) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<8} {count} events: median {statistics.median(ms):7.1f} ms  "
        f" min {min(ms):7.1f} ms   max {max(ms):7.1f} ms   ({len(ms)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()

    signer = WebhookSigner()
    with (
        tempfile.TemporaryDirectory() as folder,
        live_web(Path(folder), environ=signer.environ) as web,
        web.client() as client,
    ):
        app = web.app
        now = at("2026-12-01 15:00")
        active_subscribers(app, 200, now)
        send_due(app, now)
        with transaction(app.engine) as session:
            deliveries = list(session.scalars(select(m.Delivery.id)))
        print(f"SQLite at {app.config.database_url}; {len(deliveries)} deliveries\n")

        timings: dict[str, list[float]] = {"process": [], "handle": [], "http": []}
        round_no = 0
        for _ in range(args.rounds):
            for name in timings:
                round_no += 1
                events = make_events(round_no, args.events, deliveries)
                with transaction(app.engine) as session:  # give the bounced back, so every round suppresses
                    session.execute(m.Subscriber.__table__.update().values(status=m.SubscriberStatus.ACTIVE))
                received = datetime.now(UTC)
                if name == "process":
                    started = time.perf_counter()
                    result = process_sendgrid_events(app, events, received)
                    timings[name].append(time.perf_counter() - started)
                    assert result.stored == args.events, result
                    continue
                body = webhook_body(events)
                headers = signer.headers(body)
                if name == "handle":
                    started = time.perf_counter()
                    result = handle_sendgrid(app, body.encode(), headers, received)
                    timings[name].append(time.perf_counter() - started)
                    assert result.stored == args.events, result
                else:
                    started = time.perf_counter()
                    response = client.post("/webhooks/sendgrid", content=body.encode(), headers=headers)
                    timings[name].append(time.perf_counter() - started)
                    assert response.status_code == 200 and response.json()["stored"] == args.events, (
                        response.text
                    )
        for name, seconds in timings.items():
            report(name, seconds, args.events)


if __name__ == "__main__":
    main()
