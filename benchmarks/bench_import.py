"""Benchmark (not a test): import a 100,000-row CSV with `nurture.importer.import_csv`.

    .venv/bin/python benchmarks/bench_import.py [--rows 100000] [--start-postgres]

Generates the file in a temporary folder (varied addresses, names, zones and date
formats, a few duplicates), then imports it into a fresh store and prints rows per
second: first parsing and validation alone (`read_rows`), then the whole import
(validate, merge, write subscribers and consent events, enroll).

Runs on SQLite always; on PostgreSQL too when NURTURE_BENCH_POSTGRES_URL names a
server (a throwaway database is created on it and dropped afterwards), or with
--start-postgres, which starts a throwaway local cluster as the tests do.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nurture.app import App  # noqa: E402
from nurture.config import load_config  # noqa: E402
from nurture.audience.importer import import_csv, read_rows  # noqa: E402
from tests.support.factories import SECRET, write_project  # noqa: E402

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc)
ZONES = ["", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "timezone", "consented_at", "consent_source"])
        for i in range(rows):
            n = i - 1 if i % 500 == 499 else i  # a duplicate now and then
            day = datetime(2023, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=17 * n)
            when = day.isoformat() if n % 2 else day.date().isoformat()
            source = "paper form, open day" if n % 3 == 0 else "website signup"
            writer.writerow([f"Person.{n}@Example{n % 40}.com", f"Name{n}" if n % 5 else "", ZONES[n % len(ZONES)], when, source])


def timed(label: str, rows: int, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    print(f"  {label:<40} {seconds:7.2f} s  {rows / seconds:10,.0f} rows/s", flush=True)
    return result


def run(store: str, database_url: str, csv_path: Path, rows: int, folder: Path) -> None:
    config_path = write_project(folder, {"database.url": database_url})
    app = App.open(load_config(config_path, environ={"NURTURE_SECRET_KEY": SECRET}))
    try:
        print(f"{store}:", flush=True)
        report = timed("import_csv (validate + write + enroll)", rows, lambda: import_csv(app, csv_path, NOW))
        print(
            f"  -> {report.created:,} added, {report.merged:,} merged, {len(report.invalid)} invalid, {report.enrolled:,} enrolled",
            flush=True,
        )
        again = timed("import_csv again (all merge)", rows, lambda: import_csv(app, csv_path, NOW))
        print(f"  -> {again.created:,} added, {again.merged:,} merged", flush=True)
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--start-postgres", action="store_true", help="start a throwaway local PostgreSQL cluster")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nurture-bench-import-") as name:
        folder = Path(name)
        csv_path = folder / "people.csv"
        started = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

        good, problems, count = timed("read_rows (parse + validate only)", args.rows, lambda: read_rows(csv_path, NOW))
        assert count == args.rows and not problems, problems[:3]

        sqlite_dir = folder / "sqlite"
        sqlite_dir.mkdir()
        run("SQLite", f"sqlite:///{sqlite_dir / 'nurture.db'}", csv_path, args.rows, sqlite_dir)

        server = None
        url = os.environ.get("NURTURE_BENCH_POSTGRES_URL")
        if url or args.start_postgres:
            from tests.support.postgres import PostgresServer

            server = PostgresServer(url) if url else PostgresServer.start()
            database = f"nurture_bench_{os.getpid()}"
            try:
                pg_dir = folder / "postgres"
                pg_dir.mkdir()
                run("PostgreSQL", server.create_database(database), csv_path, args.rows, pg_dir)
            finally:
                server.drop_database(database)
                server.stop()
        else:
            print("PostgreSQL: skipped (set NURTURE_BENCH_POSTGRES_URL, or pass --start-postgres)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
