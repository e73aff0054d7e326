"""Webhook batches while a series pass sends: how long each takes, and what they cost the pass.

    .venv/bin/python benchmarks/bench_webhook_during_pass.py [--people 100000] [--start-postgres]

Fills a store with readers due for their first email (as bench_send.py does), then runs
`nurture send-due` against the SendGrid stand-in on two copies of it: alone, and while this
process stores a batch of 1,000 events once a second, naming the 200 emails handed over
most recently (processed, delivered, open and click, 2% soft bounces), as SendGrid posts
them during a send. Prints both pass times and the batches' times (median, 95th
percentile, worst). On SQLite the pass and the batches share one writer at a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from benchmarks.bench_webhook import make_events
from benchmarks.harness import (
    Store,
    add_postgres_option,
    postgres_server,
    project,
    standin_stats,
    start_standin,
)
from nurture.app import App
from nurture.config import load_config
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.webhooks import process_sendgrid_events
from tests.support.factories import close_opened, open_app

REPO = Path(__file__).resolve().parents[1]
SEND_AT = "2026-12-01T15:00:00+00:00"
OVERRIDES = {"delivery.batch_size": 1000, "delivery.concurrency": 4}


def recent_emails(app: App) -> list[tuple[str, str]]:
    """The 200 emails handed over last, with their recipients' address keys."""
    with reading(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.message_key, m.Subscriber.email_key)
            .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .where(m.Delivery.submitted_at.is_not(None))
            .order_by(m.Delivery.id.desc())
            .limit(200)
        ).all()
    return [(key, email_key) for key, email_key in rows]


def one_pass(folder: Path, url: str, people: int, webhooks: bool) -> tuple[float, list[float]]:
    """A pass on the store at url; with webhooks, the batches stored meanwhile. Returns
    (the pass's seconds, each batch's seconds)."""
    config_path, env = project(folder, url, "STANDIN", OVERRIDES)
    standin, standin_url = start_standin(0.05)
    env["NURTURE_SENDGRID_HOST"] = standin_url
    app = open_app(load_config(config_path, environ=env))
    batches: list[float] = []
    try:
        started = time.perf_counter()
        sending = subprocess.Popen(
            [sys.executable, "-m", "nurture", "send-due", "--now", SEND_AT],
            env=env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        round_no = 0
        while webhooks and sending.poll() is None:
            time.sleep(1.0)
            named = recent_emails(app)
            if not named:
                continue
            round_no += 1
            events = make_events(round_no, 1000, named)
            for event in events:
                if event["event"] == "bounce":
                    event["type"] = "blocked"  # a soft bounce: the reader stays
            batch_started = time.perf_counter()
            report = process_sendgrid_events(app, events, datetime.now(UTC))
            batches.append(time.perf_counter() - batch_started)
            assert report.stored == len(events) and not report.mismatched, report
        _, errors = sending.communicate()
        seconds = time.perf_counter() - started
        if sending.returncode != 0:
            raise SystemExit(f"send-due failed: {errors[-2000:]}")
        received = standin_stats(standin_url)["messages"]
        if received != people:
            raise SystemExit(f"the stand-in received {received} messages, expected {people}")
        return seconds, batches
    finally:
        close_opened()
        standin.terminate()
        standin.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    add_postgres_option(parser)
    args = parser.parse_args()
    server = postgres_server(args)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-webhook-pass-") as name:
            folder = Path(name)
            store = Store(folder, server)
            config_path, env = project(folder / "fill", store.url, "http://unused", OVERRIDES)
            fill = [sys.executable, str(REPO / "benchmarks" / "bench_send.py"), "--fill", str(config_path)]
            subprocess.run([*fill, str(args.people)], env=env, check=True)
            alone, _ = one_pass(folder / "alone", store.copy("alone"), args.people, webhooks=False)
            copy = store.copy("webhooks")
            shared, batches = one_pass(folder / "webhooks", copy, args.people, webhooks=True)
            if server is not None:
                store.drop()
    finally:
        if server is not None:
            server.stop()
    where = "PostgreSQL" if server is not None else "SQLite"
    print(f"{where}, {args.people:,} emails")
    print(f"pass alone             {alone:7.2f} s")
    print(f"pass with the webhooks {shared:7.2f} s  ({shared / alone:.2f}x)")
    if batches:
        ms = sorted(seconds * 1000 for seconds in batches)
        p95 = ms[max(0, round(len(ms) * 0.95) - 1)]
        print(
            f"{len(ms)} batches of 1,000 events: median {statistics.median(ms):.0f} ms,"
            f" p95 {p95:.0f} ms, worst {ms[-1]:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
