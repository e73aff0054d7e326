"""Newsletter claims: 100,000 subscribers in five zones through the SendGrid stand-in.

    .venv/bin/python benchmarks/bench_newsletter_claims.py [--size 100000] [--latency 0.05] [--repeat 5]

Every pass is the real `nurture send-due --now ...` in its own process (SQLite), timed
end to end. Measured:

- practice time: the one pass that sends to everyone;
- subscriber time: the pass at which the first zone (Auckland) reaches 10:00 and gets
  its fifth, beside a minimal script that does only the unavoidable work for the same
  count (read that zone's subscribers, one ledger row each, POST 1,000 a request with
  the same number in flight, mark sent), run the same way;
- the pass while the newsletter is pending: before any zone is due, and after the
  first zone is done while four wait; each against a truly idle pass (nothing due).
Idle and pending passes change nothing, so they are repeated and the median is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

REPO = Path(__file__).resolve().parents[1]
ZONES = ["Pacific/Auckland", "Asia/Kolkata", "Europe/London", "America/New_York", "America/Los_Angeles"]
START = "2026-11-25T12:00:00+00:00"
SEND_AT = "2026-12-01 10:00"
IDLE_PASS = "2026-11-30T19:00:30+00:00"  # before 10:00 anywhere on Earth: nothing is due
BEFORE_ZONES_PASS = "2026-11-30T20:30:30+00:00"  # 10:00 has come at UTC+14 but in none of the five zones
ZONE_PASS = "2026-11-30T21:00:30+00:00"  # 10:00 in Auckland (UTC+13 in December)
PENDING_PASS = "2026-11-30T21:05:30+00:00"  # Auckland done, four zones wait
PRACTICE_PASS = "2026-12-01T18:00:30+00:00"  # 10:00 in Los Angeles, the practice's zone
NEWSLETTER = "2026-12-winter-note.md"
MINIMAL = str(REPO / "benchmarks" / "minimal_send.py")  # the shared yardstick (--audience subscribers --zone)
BATCH = 1000


# ---------------------------------------------------------------- the store


def fill(config_path: str, size: int, mode: str) -> None:
    """Subscribers in five zones (in no series), and one newsletter scheduled in `mode`."""
    # Deferred, heavy imports: the parent process stays small (its children's peak
    # memory starts from its own).
    from nurture.config import load_config
    from nurture.newsletters import schedule
    from nurture.store import models as m
    from nurture.store.db import transaction
    from tests.support.factories import close_opened, open_app

    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    start = datetime.fromisoformat(START)
    share = size // len(ZONES)
    with transaction(app.engine) as session:
        for number, zone_name in enumerate(ZONES):
            session.execute(
                m.Subscriber.__table__.insert(),
                [
                    {
                        "email": f"z{number}-{i}@example.com",
                        "email_key": f"z{number}-{i}@example.com",
                        "first_name": f"P{i}",
                        "timezone": zone_name,
                        "status": m.SubscriberStatus.ACTIVE,
                        "source": "bench",
                        "created_at": start,
                        "confirmed_at": start,
                        "status_changed_at": start,
                        "confirm_nonce": 0,
                    }
                    for i in range(share)
                ],
            )
    if mode != "none":
        schedule(app, app.config.campaigns_dir / "newsletters" / NEWSLETTER, SEND_AT, mode, start)
    close_opened()


# ---------------------------------------------------------------- running


class StandIn:
    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.sendgrid_standin",
                "--port",
                "0",
                "--latency",
                str(latency),
                "--api-key",
                "SG.bench",
                "--count-only",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline().strip() if self.process.stdout else ""
        if not line.startswith("READY "):
            raise SystemExit(f"stand-in did not start: {line!r}")
        self.url = line.split(" ", 1)[1]

    def messages(self) -> int:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"{self.url}/_standin/stats"
        ) as answer:
            return int(json.loads(answer.read())["messages"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Project:
    """A project folder with its own SQLite store, filled once."""

    def __init__(
        self, folder: Path, standin: StandIn, size: int, mode: str, batch_size: int, concurrency: int
    ) -> None:
        from tests.support.factories import SECRET, write_project  # not at the top: see fill()

        self.folder = folder
        self.cpu = 0.0
        folder.mkdir(parents=True)
        self.standin = standin
        overrides = {
            "delivery.transport": "sendgrid",
            "delivery.batch_size": batch_size,
            "delivery.concurrency": concurrency,
        }
        config_path = write_project(folder, overrides)
        self.database = str(folder / "nurture.db")
        self.env = {
            **os.environ,
            "NURTURE_SECRET_KEY": SECRET,
            "SENDGRID_API_KEY": "SG.bench",
            "NURTURE_SENDGRID_HOST": standin.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "NURTURE_CONFIG": str(config_path),
        }
        subprocess.run(
            [sys.executable, __file__, "--fill", str(config_path), str(size), mode], env=self.env, check=True
        )
        self.pristine = self.copy("pristine")

    def timed(self, command: list[str], expected: int) -> tuple[float, str]:
        """Wall seconds of `command`; its CPU seconds go to `self.cpu` (steadier on a busy machine)."""
        before = self.standin.messages()
        began = time.perf_counter()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, cwd=self.folder, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime + after.ru_stime) - (used.ru_utime + used.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command[:4])} failed: {done.stderr}")
        sent = self.standin.messages() - before
        if sent != expected:
            raise SystemExit(
                f"the stand-in received {sent} messages, expected {expected}: {done.stdout.strip()}"
            )
        return elapsed, done.stdout.strip()

    def send_due(self, now: str, expected: int) -> tuple[float, str]:
        return self.timed([sys.executable, "-m", "nurture", "send-due", "--now", now], expected)

    def minimal(self, now: str, zone_name: str, expected: int, concurrency: int) -> float:
        """The minimal script on a copy of this store as filled (zone "" for everyone)."""
        copy = str(self.folder / "minimal.db")
        shutil.copyfile(self.pristine, copy)
        command = [
            sys.executable,
            MINIMAL,
            f"sqlite:///{copy}",
            self.standin.url,
            now,
            "--concurrency",
            str(concurrency),
            "--audience",
            "subscribers",
        ]
        return self.timed(command + (["--zone", zone_name] if zone_name else []), expected)[0]

    def copy(self, name: str) -> str:
        target = self.folder / f"{name}.db"
        shutil.copyfile(self.database, target)
        return str(target)


def median_pass(project: Project, now: str, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of a pass that sends nothing."""
    walls, cpus = [], []
    for _ in range(repeat):
        walls.append(project.send_due(now, 0)[0])
        cpus.append(project.cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--fill":
        fill(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--repeat", type=int, default=5, help="idle and pending passes: the median of this many"
    )
    args = parser.parse_args()
    share = args.size // len(ZONES)
    size = share * len(ZONES)
    standin = StandIn(args.latency)
    print(
        f"newsletter claims: {size:,} subscribers in {len(ZONES)} zones, SQLite, batch {args.batch_size}, "
        f"{args.concurrency} in flight, {args.latency * 1000:.0f} ms per "
        f"request; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="nurture-bench-nl-") as name:
            root = Path(name)
            practice = Project(
                root / "practice", standin, size, "practice", args.batch_size, args.concurrency
            )
            subscriber = Project(
                root / "subscriber", standin, size, "subscriber", args.batch_size, args.concurrency
            )

            idle, idle_cpu = median_pass(subscriber, IDLE_PASS, args.repeat)
            print(
                f"idle pass (nothing due)                  {idle:6.2f} "
                f"s  CPU {idle_cpu:5.2f} s  (medians of {args.repeat})",
                flush=True,
            )
            wall, cpu = median_pass(subscriber, BEFORE_ZONES_PASS, args.repeat)
            print(
                f"pending, no zone due yet                 {wall:6.2f} s  CPU "
                f"{cpu:5.2f} s  {wall / idle:4.2f} x idle ({cpu / idle_cpu:4.2f} in CPU)",
                flush=True,
            )

            seconds, summary = subscriber.send_due(ZONE_PASS, share)
            cpu = subscriber.cpu
            minimal_seconds = subscriber.minimal(ZONE_PASS, ZONES[0], share, args.concurrency)
            print(
                f"subscriber time, {ZONES[0]} pass   {seconds:6.2f} s "
                f" CPU {cpu:5.2f} s  {share / seconds:8,.0f} emails/s  "
                f"minimal script {minimal_seconds:5.2f} s (CPU {subscriber.cpu:5.2f} "
                f"s): {minimal_seconds / seconds:4.2f} of its speed "
                f"({subscriber.cpu / cpu:4.2f} in CPU)  [{summary}]",
                flush=True,
            )
            wall, cpu = median_pass(subscriber, PENDING_PASS, args.repeat)
            print(
                f"pending, first zone done, four wait      {wall:6.2f} s  CPU "
                f"{cpu:5.2f} s  {wall / idle:4.2f} x idle ({cpu / idle_cpu:4.2f} in CPU)",
                flush=True,
            )

            seconds, summary = practice.send_due(PRACTICE_PASS, size)
            cpu = practice.cpu
            minimal_all = practice.minimal(PRACTICE_PASS, "", size, args.concurrency)
            print(
                f"practice time, the one pass              {seconds:6.2f} "
                f"s  CPU {cpu:5.2f} s  {size / seconds:8,.0f} emails/s  "
                f"minimal script {minimal_all:5.2f} s (CPU {practice.cpu:5.2f} "
                f"s): {minimal_all / seconds:4.2f} of its speed "
                f"({practice.cpu / cpu:4.2f} in CPU)  [{summary}]",
                flush=True,
            )
    finally:
        standin.stop()
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
