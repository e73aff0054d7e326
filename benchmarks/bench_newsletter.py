"""A newsletter to N subscribers in five time zones, through the SendGrid stand-in (50 ms per
request), beside the minimal script (benchmarks/minimal_send.py) for the same count.

    .venv/bin/python benchmarks/bench_newsletter.py [--sizes 100000] [--start-postgres]

Practice time: one pass sends to everyone. Subscriber time: the pass at which the first
zone reaches the hour sends that zone's fifth; the pass a minute later has nothing to
send while the other zones wait, and is compared with a truly idle pass (a store with
nothing scheduled). The series is not due in these stores, so only the newsletter moves.
The practice-time pass is also compared with the minimal script's --lawful run (a
signed unsubscribe link and the one-click headers in every email).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from sqlalchemy import update

from benchmarks.harness import (
    Run,
    Store,
    add_postgres_option,
    each_size,
    postgres_server,
    project,
    run_all,
    send_with_standin,
)
from nurture.config import load_config
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import active_subscribers, at, close_opened, open_app

REPO = Path(__file__).resolve().parents[1]
ZONES = ["Asia/Tokyo", "Asia/Kolkata", "Europe/London", "America/New_York", "America/Los_Angeles"]
FIRST_ZONE = ZONES[0]
START = at("2026-12-01 12:00")
SCHEDULED_AT = "2026-12-02 10:00"
PRACTICE_PASS = "2026-12-02T18:00:30+00:00"  # 10:00 in Los Angeles, the practice's zone
ZONE_PASS = "2026-12-02T01:00:30+00:00"  # 10:00 in Tokyo, the first of the five zones
PENDING_PASS = "2026-12-02T01:01:30+00:00"  # a minute later: the other four zones wait
MINIMAL = str(REPO / "benchmarks" / "minimal_send.py")
NEWSLETTER = "campaigns/newsletters/2026-12-winter-note.md"


def fill(config_path: str, size: int) -> None:
    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    share = size // len(ZONES)
    for zone in ZONES:
        for start in range(0, share, 100_000):
            active_subscribers(
                app,
                min(100_000, share - start),
                START,
                timezone_name=zone,
                prefix=f"{zone.replace('/', '-')}-{start}-",
            )
    with transaction(app.engine) as session:  # the series waits: only the newsletter is due
        session.execute(update(m.Enrollment).values(next_due_at=at("2027-06-01 12:00")))
    close_opened()


def schedule(folder: Path, env: dict[str, str], mode: str) -> None:
    run_all(
        [
            [
                sys.executable,
                "-m",
                "nurture",
                "newsletter",
                "schedule",
                NEWSLETTER,
                "--at",
                SCHEDULED_AT,
                "--timezone",
                mode,
                "--now",
                START.isoformat(),
            ]
        ],
        env,
        folder,
    )


def bench_size(size: int, args: argparse.Namespace, folder: Path, server: object) -> None:
    store = Store(folder, server)
    overrides = {"delivery.batch_size": args.batch_size, "delivery.concurrency": args.concurrency}
    zone_count = size // len(ZONES)
    size = zone_count * len(ZONES)
    try:
        config_path, env = project(folder / "fill", store.url, "http://unused", overrides)
        subprocess.run([sys.executable, __file__, "--fill", str(config_path), str(size)], env=env, check=True)
        names = ["practice", "subscriber", "idle", "minimal-all", "minimal-lawful", "minimal-zone"]
        copies = {name: store.copy(name) for name in names}
        kind = "PostgreSQL" if server else "SQLite"
        print(
            f"newsletter to {size:,} subscribers in {len(ZONES)} zones, {kind}, "
            f"batch {args.batch_size}, {args.latency * 1000:.0f} ms per request",
            flush=True,
        )

        def nurture(name: str, when: str, expected: int, mode: str | None = None) -> Run:
            run_dir = folder / f"run-{name}"
            _, env = project(run_dir, copies[name], "STANDIN", overrides)
            if mode:
                schedule(run_dir, env, mode)
            return send_with_standin(
                args.latency,
                [[sys.executable, "-m", "nurture", "send-due", "--now", when]],
                env,
                run_dir,
                expected,
            )

        def minimal(name: str, expected: int, *zone: str, lawful: bool = False) -> Run:
            command = [
                sys.executable,
                MINIMAL,
                copies[name],
                "STANDIN",
                ZONE_PASS,
                "--audience",
                "subscribers",
                "--concurrency",
                str(args.concurrency),
            ]
            if zone:
                command += ["--zone", zone[0]]
            if lawful:
                command.append("--lawful")
            return send_with_standin(args.latency, [command], dict(os.environ), REPO, expected)

        everyone = minimal("minimal-all", size)
        print(everyone.line("minimal script, everyone", size), flush=True)
        lawful = minimal("minimal-lawful", size, lawful=True)
        print(lawful.line("minimal script, everyone, --lawful", size), flush=True)
        one_zone = minimal("minimal-zone", zone_count, FIRST_ZONE)
        print(one_zone.line(f"minimal script, {FIRST_ZONE}", zone_count), flush=True)

        practice = nurture("practice", PRACTICE_PASS, size, "practice")
        print(
            practice.line("practice time: the one pass", size, everyone) + f"  [{practice.output}]",
            flush=True,
        )
        print(practice.line("  the same, against --lawful", size, lawful), flush=True)
        idle = nurture("idle", ZONE_PASS, 0)
        print(idle.line("idle pass (nothing scheduled)", 0) + f"  [{idle.output}]", flush=True)
        zone_pass = nurture("subscriber", ZONE_PASS, zone_count, "subscriber")
        print(
            zone_pass.line(f"subscriber time: {FIRST_ZONE} pass", zone_count, one_zone)
            + f"  [{zone_pass.output}]",
            flush=True,
        )
        pending = nurture("subscriber", PENDING_PASS, 0)
        print(
            pending.line("pass while 4 zones wait", 0)
            + f"  {pending.seconds / idle.seconds:4.2f} x the idle pass  [{pending.output}]",
            flush=True,
        )
    finally:
        if server is not None:
            store.drop()


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--fill":
        fill(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", "--size", type=int, nargs="+", default=[100_000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    add_postgres_option(parser)
    args = parser.parse_args()
    server = postgres_server(args)
    each_size(args.sizes, "nurture-bench-newsletter-", bench_size, args, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
