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

With --lawful it also does what no lawful or working series can leave out, and no
more: each recipient gets their own signed unsubscribe link (by nurture's own signer)
in the body and in a List-Unsubscribe header, with List-Unsubscribe-Post once per
request (CAN-SPAM, RFC 8058, Gmail's and Yahoo's bulk-sender rules); and each claimed
enrollment moves to its next step in the claim's transaction, or the series would
send its first email forever. Still no consent re-check, no daily cap, no
handed-over mark, no preference link. bench_send.py prints the ratio to both scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from nurture.store import models as m
from nurture.store.db import make_engine
from nurture.tokens import unsubscribe_token_signer

REPO = Path(__file__).resolve().parents[1]
BATCH = 1000
STREAM = "minimal"


def unsubscribe_links(secret: str, base_url: str, stream: str) -> Callable[[int], str]:
    """A signed unsubscribe link per subscriber id, made by nurture's own signer: the fastest
    way we know to sign one (it hashes the key's pads once), so the yardstick is not slowed."""
    sign = unsubscribe_token_signer(secret)
    prefix = f"{base_url}/unsubscribe/"

    def link(subscriber_id: int) -> str:
        return prefix + sign(subscriber_id, stream)

    return link


def post(
    opener: urllib.request.OpenerDirector,
    url: str,
    rows: list[tuple[Any, ...]],
    link: Callable[[int], str] | None = None,
) -> str:
    personalizations: list[dict[str, Any]] = []
    for sid, email, name, *_ in rows:
        personalization: dict[str, Any] = {
            "to": [{"email": email}],
            "subject": "Hello",
            "substitutions": {"-name-": name or "there"},
            "custom_args": {"s": str(sid)},
        }
        if link is not None:
            unsubscribe = link(sid)
            personalization["headers"] = {"List-Unsubscribe": f"<{unsubscribe}>"}
            personalization["substitutions"]["-unsubscribe-"] = unsubscribe
        personalizations.append(personalization)
    text = "Hi -name-" if link is None else "Hi -name-\n\nUnsubscribe: -unsubscribe-"
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": {"email": "hello@example.com"},
        "content": [{"type": "text/plain", "value": text}],
    }
    if link is not None:
        body["headers"] = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
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
    parser.add_argument(
        "--lawful",
        action="store_true",
        help="also a signed unsubscribe link per email and, for a series, the enrollment's advance",
    )
    args = parser.parse_args()
    link = (
        unsubscribe_links(
            os.environ.get("NURTURE_SECRET_KEY", "minimal"), "https://example.com/n", args.stream
        )
        if args.lawful
        else None
    )
    now = datetime.fromisoformat(args.now)
    engine = make_engine(args.database_url)
    dialect = engine.dialect
    sqlite = dialect.name == "sqlite"
    when = m.Delivery.__table__.c.claimed_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = when(now) if when else now
    week_later = when(now + timedelta(days=7)) if when else now + timedelta(days=7)
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
            if args.lawful and args.audience == "enrollments":
                # One statement for the page: every claimed enrollment moves on to step 2,
                # due a week later (the step's key and delay are all alike here).
                cursor.execute(
                    f"UPDATE enrollments SET next_step = next_step + 1, next_step_key = {mark}, "
                    f"next_due_at = {mark}, updated_at = {mark} "
                    f"WHERE id IN ({', '.join([mark] * len(rows))})",
                    ("#2", week_later, stamp, *(row[3] for row in rows)),
                )
            connection.commit()
            in_flight.append(
                (pool.submit(post, opener, args.standin_url, rows, link), [row[0] for row in rows])
            )
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
