"""How long a signed batch of 1,000 SendGrid events takes, on SQLite or PostgreSQL.

    .venv/bin/python benchmarks/bench_webhook.py [--rounds 7] [--events 1000]
    .venv/bin/python benchmarks/bench_webhook.py --past 1000000 [--start-postgres]

--past N first stores N emails sent long ago (spread over 400 days, 1% of them settled by
a provider event), as a year of sending leaves them: a batch should cost the same after
it. --start-postgres runs on a throwaway local cluster (or NURTURE_BENCH_POSTGRES_URL).

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select

from benchmarks.harness import add_postgres_option, postgres_server
from nurture.app import App
from nurture.sending.deliveries import SETTLED_NOTE
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import handle_sendgrid, process_sendgrid_events
from tests.support.factories import active_subscribers, at
from tests.support.webserver import WebhookSigner, live_web, sg_event, webhook_body

KINDS = ["processed", "delivered", "open", "click"]


def make_events(round_no: int, count: int, deliveries: list[tuple[str, str]]) -> list[dict]:
    events = []
    for n in range(count):
        number = round_no * 1_000_000 + n
        delivery, address = deliveries[n % len(deliveries)]
        if n % 50 == 0:
            events.append(
                sg_event(
                    "bounce",
                    number,
                    delivery_id=delivery,
                    email=address,
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
                    email=address,
                    url="https://www.example.com/articles/what-is-kap",
                )
            )
    return events


def store_history(app: App, people: list[int], past: int, now: datetime) -> None:
    """`past` emails sent to `people` over the 400 days before `now`; ANALYZE on PostgreSQL,
    as autovacuum would have done over the year."""
    rows_per_chunk = 50_000
    for start in range(0, past, rows_per_chunk):
        with transaction(app.engine) as session:
            session.execute(
                insert(m.Delivery),
                [
                    {
                        "subscriber_id": people[n % len(people)],
                        "stream": f"past-newsletter-{n // len(people)}",
                        "step": 1,
                        "step_key": "newsletter",
                        "status": m.DeliveryStatus.SENT,
                        "error": f"{SETTLED_NOTE} delivered" if n % 100 == 0 else None,
                        "claimed_at": (when := now - timedelta(days=1 + (n * 400) / past)),
                        "finished_at": when,
                    }
                    for n in range(start, min(past, start + rows_per_chunk))
                ],
            )
    if app.engine.dialect.name == "postgresql":
        with app.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


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
    parser.add_argument("--past", type=int, default=0, help="emails sent long ago, stored first")
    add_postgres_option(parser)
    args = parser.parse_args()
    server = postgres_server(args)
    try:
        run(args, server)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace, server: object) -> None:
    signer = WebhookSigner()
    database = {"database_url": server.create_database()} if server is not None else {}  # type: ignore[attr-defined]
    with (
        tempfile.TemporaryDirectory() as folder,
        live_web(Path(folder), environ=signer.environ, **database) as web,
        web.client() as client,
    ):
        app = web.app
        now = at("2026-12-01 15:00")
        people = active_subscribers(app, 200, now - timedelta(days=400))
        if args.past:
            started = time.perf_counter()
            store_history(app, people, args.past, now)
            print(f"{args.past:,} past emails stored in {time.perf_counter() - started:.1f} s")
        send_due(app, now)
        with transaction(app.engine) as session:
            # Events name their email by its message key, as nurture hands it to SendGrid.
            deliveries = [
                (key, email_key)
                for key, email_key in session.execute(
                    select(m.Delivery.message_key, m.Subscriber.email_key)
                    .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
                    .where(m.Delivery.claimed_at == now)
                )
            ]
        print(f"{app.engine.dialect.name}; {len(deliveries)} deliveries sent now, {args.past:,} before\n")

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
                    assert result.stored == args.events and not result.mismatched, result
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
