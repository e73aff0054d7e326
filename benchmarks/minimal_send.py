"""The least work a sending pass cannot avoid, as a yardstick for `nurture send-due`.

    .venv/bin/python benchmarks/minimal_send.py DATABASE_URL STANDIN_URL NOW [--concurrency 4]

Reads the due subscribers (active enrollments whose next email is due, of active
subscribers; or, for a newsletter, the active subscribers, optionally of one zone) a
page at a time, writes one ledger row (a delivery) each, POSTs them
to the SendGrid stand-in in batches of 1,000 personalizations with up to
--concurrency requests in flight, and marks them sent. Nothing else: no rendering
beyond a substitution, no consent re-check, no daily cap, no enrollment advance,
no retry. bench_send.py and bench_newsletter.py run it beside the real command
and print the ratio of the two times.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from nurture.store import models as m
from nurture.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]
BATCH = 1000
STREAM = "minimal"


def post(opener: urllib.request.OpenerDirector, url: str, rows: list[tuple[Any, ...]]) -> str:
    body = {
        "personalizations": [
            {
                "to": [{"email": email}],
                "subject": "Hello",
                "substitutions": {"-name-": name or "there"},
                "custom_args": {"s": str(sid)},
            }
            for sid, email, name, *_ in rows
        ],
        "from": {"email": "hello@example.com"},
        "content": [{"type": "text/plain", "value": "Hi -name-"}],
    }
    request = urllib.request.Request(
        f"{url}/v3/mail/send",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer SG.bench", "Content-Type": "application/json"},
    )
    with opener.open(request) as answer:
        return str(answer.headers.get("X-Message-Id", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("standin_url")
    parser.add_argument("now")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--stream", default=STREAM)
    parser.add_argument(
        "--audience",
        choices=["enrollments", "subscribers"],
        default="enrollments",
        help="series: due enrollments; newsletter: active subscribers",
    )
    parser.add_argument(
        "--zone", help="only subscribers in this time zone (a subscriber-time newsletter's zone pass)"
    )
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now)
    engine = make_engine(args.database_url)
    dialect = engine.dialect
    sqlite = dialect.name == "sqlite"
    when = m.Delivery.__table__.c.claimed_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = when(now) if when else now
    mark = "?" if sqlite else "%s"
    connection = engine.raw_connection()
    cursor = connection.cursor()

    def begin() -> None:
        if sqlite:  # the engine's connections manage their own transactions on SQLite
            cursor.execute("BEGIN IMMEDIATE")

    # The unique key needs a step key: a newsletter's is fixed, a first step's the placeholder
    # of an unkeyed row.
    step_key = "newsletter" if args.stream.startswith("newsletter:") else "#1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    in_flight: list[tuple[Future[str], list[int]]] = []
    sent = 0

    def finish(future: Future[str], subscriber_ids: list[int]) -> None:
        nonlocal sent
        message_id = future.result()
        begin()
        cursor.executemany(
            f"UPDATE deliveries SET status = 'sent', finished_at = {mark}, provider_message_id = {mark} "
            f"WHERE subscriber_id = {mark} AND stream = {mark} AND step = 1",
            [(stamp, message_id, sid, args.stream) for sid in subscriber_ids],
        )
        connection.commit()
        sent += len(subscriber_ids)

    last = 0
    with ThreadPoolExecutor(args.concurrency) as pool:
        while True:
            if args.audience == "enrollments":
                # Pages along the primary key. On SQLite, NOT INDEXED keeps it from taking the
                # due index instead: with every row due at the same instant, that index orders
                # nothing and each page would re-read all the rows before it.
                cursor.execute(
                    "SELECT s.id, s.email, s.first_name, e.id FROM "
                    f"enrollments e {'NOT INDEXED ' if sqlite else ''}"
                    "JOIN subscribers s ON s.id = e.subscriber_id "
                    f"WHERE e.id > {mark} AND e.status = 'active' AND e.next_due_at "
                    f"<= {mark} AND s.status = 'active' ORDER BY e.id LIMIT {BATCH}",
                    (last, stamp),
                )
            else:
                zone = f"AND s.timezone = {mark} " if args.zone else ""
                cursor.execute(
                    "SELECT s.id, s.email, s.first_name, s.id FROM subscribers s WHERE "
                    f"s.id > {mark} AND s.status = 'active' {zone}ORDER BY s.id LIMIT {BATCH}",
                    (last, args.zone) if args.zone else (last,),
                )
            rows = cursor.fetchall()
            if not rows:
                break
            last = rows[-1][3]
            begin()
            cursor.executemany(
                "INSERT INTO deliveries (subscriber_id, stream, step, step_key, status, worker, "
                f"claimed_at) VALUES ({mark}, {mark}, 1, {mark}, 'claimed', 'minimal', {mark})",
                [(row[0], args.stream, step_key, stamp) for row in rows],
            )
            connection.commit()
            in_flight.append((pool.submit(post, opener, args.standin_url, rows), [row[0] for row in rows]))
            while len(in_flight) >= args.concurrency:
                finish(*in_flight.pop(0))
        for future, ids in in_flight:
            finish(future, ids)
    connection.close()
    engine.dispose()
    print(f"minimal: sent {sent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
