"""Does a year of history slow anything down? The same work on an empty store and on one
holding a long history, side by side (SQLite).

    .venv/bin/python benchmarks/bench_history.py                       # 50k people, 2M past emails
    .venv/bin/python benchmarks/bench_history.py --past 10000000       # 10M past emails, 20M events

Both stores hold `--people` active readers due for the first email of the series. The
history store also holds `--past` earlier deliveries to them spread over 400 days (an
old series and weekly newsletters) and two provider events for each (processed and
delivered), as a practice would after a year or two of sending. Then, on each store:

- the console's pages an owner opens most (Today, Results, a person, Deliveries, a search),
  each fetched `--repeat` times over HTTP with a signed-in session: median and 95th percentile;
- the export of one person (a subject access request);
- `nurture summary --to` (the weekly summary) and `nurture send-due` sending the series step
  to everyone, then an idle pass right after, each as its own process, on a fresh copy of
  the filled store: `--passes N` repeats them N times and keeps the medians.

`--keep DIR` keeps both stores in DIR and reuses them on the next run with the same sizes
(filling 10M past emails takes about ten minutes). Put DIR (and TMPDIR) on a file system
that is not full of recently deleted files: the outbox writes one file per email.

The goal (issue 25): each pass within 1.2x of the empty store's, each page under 300 ms at
the 95th percentile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from sqlalchemy import create_engine, text

from benchmarks.harness import Run, run_all
from nurture.audience import people
from nurture.config import load_config
from nurture.reporting.result_days import summarize_days
from tests.support.console import console
from tests.support.factories import SECRET, active_subscribers, at, close_opened, open_app, write_project

START = at("2026-12-01 14:00")
SEND_AT = "2026-12-01T15:00:00+00:00"
DAY_SECONDS = 86_400
HISTORY_DAYS = 400


def fill(config_path: str, people_count: int, past: int) -> None:
    """Readers due now, and `past` earlier emails to them with two events each (in SQL, in slices)."""
    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    for start in range(0, people_count, 100_000):
        active_subscribers(app, min(100_000, people_count - start), START, prefix=f"p{start}-")
    first = START - timedelta(days=HISTORY_DAYS)
    per_person = past // people_count
    with app.engine.begin() as connection:
        low, high = connection.execute(text("SELECT min(id), max(id) FROM subscribers")).one()
    # Email k to each person: the first 6 are an old series, the rest weekly newsletters.
    for k in range(per_person):
        stream = "old-series" if k < 6 else f"newsletter:{k}"
        day = (k * HISTORY_DAYS) // per_person
        with app.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO deliveries (subscriber_id, stream, step, step_key, status, claimed_at,"
                    " finished_at, provider_message_id, event_bits)"
                    # event_bits 1: delivered, as storing the events below would have set it.
                    " SELECT id, :stream, :step, :key, 'sent', :at, :at, 'hist-' || :k, 1 FROM subscribers"
                    " WHERE id BETWEEN :low AND :high"
                ),
                {
                    "stream": stream,
                    "step": k + 1 if k < 6 else 1,
                    "key": f"s{k + 1}" if k < 6 else "newsletter",
                    # As SQLAlchemy writes a datetime into SQLite (naive UTC, microseconds), so
                    # that the history compares and sorts like rows nurture wrote.
                    "at": (first + timedelta(days=day, seconds=k)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "k": k,
                    "low": low,
                    "high": high,
                },
            )
            for kind in ("processed", "delivered"):
                connection.execute(
                    text(
                        "INSERT INTO provider_events (provider, provider_event_id, kind, raw_event,"
                        " delivery_id, stream, step, occurred_at, received_at)"
                        " SELECT 'sendgrid', :kind || '-' || id, :kind, :kind, id, stream, step,"
                        " claimed_at, claimed_at FROM deliveries WHERE provider_message_id = 'hist-' || :k"
                    ),
                    {"kind": kind, "k": k},
                )
    # Over a real year each pass summarized the settled days as they came; here all at once.
    began = time.perf_counter()
    days = 0
    while done := summarize_days(app, at("2026-12-01 15:00")):
        days += done
    print(f"  {days} settled days summarized in {time.perf_counter() - began:.1f} s", flush=True)
    close_opened()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def spread(name: str, times: list[float]) -> str:
    median, p95 = statistics.median(times) * 1000, percentile(times, 0.95) * 1000
    return f"  {name:<12} median {median:7.1f} ms  p95 {p95:7.1f} ms"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[Run, str]:
    """The command in its own process (its time, CPU and peak RSS), and its last line of output."""
    run = run_all([command], env, cwd)
    return run, run.output.splitlines()[-1] if run.output else ""


def copy_store(folder: Path, scratch: Path) -> None:
    """A fresh copy of the filled store (and its write-ahead log, if one was left) in `scratch`."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    for suffix in ("", "-wal"):
        if (folder / f"nurture.db{suffix}").exists():
            shutil.copyfile(folder / f"nurture.db{suffix}", scratch / f"nurture.db{suffix}")
    os.sync()  # the copy on disk before a pass is timed, not written back under it


def has_owner(url: str) -> bool:
    """Whether a reused store still holds the owner account its last run signed in with."""
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(text("SELECT count(*) FROM owners")).scalar_one()
    engine.dispose()
    return bool(found)


def measure(
    label: str, folder: Path, people_count: int, past: int, repeat: int, passes: int
) -> dict[str, float]:
    filled = folder / f"filled-{people_count}-{past}"
    url = f"sqlite:///{folder / 'nurture.db'}"
    config_path = folder / "fill" / "config.yaml"
    env = {**os.environ, "NURTURE_SECRET_KEY": SECRET, "NURTURE_CONFIG": str(config_path)}
    began = time.perf_counter()
    if not filled.exists():
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "fill").mkdir(parents=True)
        write_project(folder / "fill", {"database.url": url})
        subprocess.run(
            [sys.executable, __file__, "--fill", str(config_path), str(people_count), str(past)],
            env=env,
            check=True,
        )
        filled.touch()
    with open_app(load_config(config_path, environ=env)).engine.begin() as connection:
        rows = connection.execute(
            text("SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM provider_events)")
        ).one()
    close_opened()
    print(
        f"{label}: {people_count:,} people, {rows[0]:,} deliveries, {rows[1]:,} events "
        f"(filled in {time.perf_counter() - began:.0f} s)",
        flush=True,
    )
    figures: dict[str, float] = {}
    # The pages read the filled store itself (a reused one keeps the owner account of its
    # last run); each round of passes works on a copy of it.
    with (
        tempfile.TemporaryDirectory() as served,
        console(Path(served), https=True, with_owner=not has_owner(url), **{"database.url": url}) as site,
    ):
        client = site.login()
        person = (
            site.app.engine.connect()
            .execute(text("SELECT id, email FROM subscribers ORDER BY id LIMIT 1 OFFSET 777"))
            .one()
        )
        pages = {
            "today": "/console/",
            "results": "/console/results",
            "person": f"/console/subscribers/{person[0]}",
            "deliveries": "/console/deliveries",
            "search": "/console/subscribers?q=p0-777",
        }
        for name, path in pages.items():
            times = []
            for _ in range(repeat):
                began = time.perf_counter()
                answer = client.get(path)
                times.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    raise SystemExit(f"{path} answered {answer.status_code}")
            figures[f"page {name} p95"] = percentile(times, 0.95)
            print(spread(name, times), flush=True)
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            people.export(site.app, person[1])
            times.append(time.perf_counter() - began)
        figures["export p95"] = percentile(times, 0.95)
        print(spread("export", times), flush=True)
    run_dir = folder / "fill"
    nurture = [sys.executable, "-m", "nurture"]
    seconds_of: dict[str, list[float]] = {}
    for round_number in range(passes):
        # Each round on a fresh copy of the filled store, so every series step has the same work.
        scratch = folder / "scratch"
        copy_store(folder, scratch)
        pass_env = {
            **env,
            "NURTURE_DATABASE_URL": f"sqlite:///{scratch / 'nurture.db'}",
            "NURTURE_DELIVERY__OUTBOX_DIR": str(scratch / "outbox"),
        }
        for name, command in (
            ("summary", [*nurture, "summary", "--to", "owner@example.com"]),
            ("series step", [*nurture, "send-due", "--now", SEND_AT]),
            ("idle pass", [*nurture, "send-due", "--now", SEND_AT]),
        ):
            run, last = timed(command, pass_env, run_dir)
            seconds_of.setdefault(name, []).append(run.seconds)
            print(
                f"  {name:<12} {run.seconds:7.2f} s  CPU {run.cpu:5.1f} s  peak RSS {run.peak_mib:6.1f} MiB"
                f"  [{last}] (round {round_number + 1})",
                flush=True,
            )
        shutil.rmtree(scratch)
    for name, values in seconds_of.items():
        figures[name] = statistics.median(values)
        if passes > 1:
            print(f"  {name:<12} median {figures[name]:7.2f} s of {passes}", flush=True)
    return figures


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--fill":
        fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--past", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--passes", type=int, default=1, help="rounds of summary, series step, idle pass")
    parser.add_argument("--keep", type=Path, help="keep the filled stores here and reuse them")
    args = parser.parse_args()
    print(
        f"load average before: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="nurture-bench-history-") as name:
        base = args.keep or Path(name)
        empty = measure("empty history", base / "empty", args.people, 0, args.repeat, args.passes)
        full = measure("long history", base / "full", args.people, args.past, args.repeat, args.passes)
    print("long history / empty:")
    for key, value in full.items():
        print(
            f"  {key:<20} {value / empty[key]:5.2f}x"
            + ("  (over 300 ms)" if "p95" in key and value > 0.3 else "")
        )
    print(f"load average after: {' '.join(f'{n:.1f}' for n in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
