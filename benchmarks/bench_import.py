"""Benchmark (not a test): `nurture import` end to end, at several sizes, with peak memory.

    .venv/bin/python benchmarks/bench_import.py [--sizes 10000 100000] [--start-postgres]
    .venv/bin/python benchmarks/bench_import.py --sizes 10000 100000 1000000

Generates each file in a temporary folder (varied addresses, names, zones and date
formats, a duplicate every 500 rows), then runs the real command in its own process,
twice: into an empty store, then again (every row merges). For each it prints the
time, rows per second and the command's peak RSS (`harness.run_all`). Before that, the
validation pass alone (`scan_rows`), also in its own process.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from benchmarks.harness import add_postgres_option, postgres_server, run_all
from tests.support.factories import SECRET, write_project

REPO = Path(__file__).resolve().parents[1]
NOW = "2026-12-01T18:00:00+00:00"
ZONES = ["", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Europe/London"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "timezone", "consented_at", "consent_source"])
        for i in range(rows):
            n = i - 1 if i % 500 == 499 else i  # a duplicate now and then
            day = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=17 * n)
            when = day.isoformat() if n % 2 else day.date().isoformat()
            source = "paper form, open day" if n % 3 == 0 else "website signup"
            writer.writerow(
                [
                    f"Person.{n}@Example{n % 40}.com",
                    f"Name{n}" if n % 5 else "",
                    ZONES[n % len(ZONES)],
                    when,
                    source,
                ]
            )


def timed_child(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """The command in its own process: (seconds, peak MiB, its CPU time and output)."""
    run = run_all([args], env, cwd)
    return run.seconds, run.peak_mib, f"(CPU {run.cpu:.1f} s) {run.output}"


def line(label: str, rows: int, seconds: float, peak: float, note: str = "") -> None:
    print(
        f"  {label:<28} {rows:>9,} rows {seconds:7.2f} s "
        f"{rows / seconds:9,.0f} rows/s  peak RSS {peak:6.1f} MiB  {note}",
        flush=True,
    )


def scan_only(csv_path: str) -> None:
    from nurture.audience.importer import (
        scan_rows,
    )  # deferred: only the --scan child, whose memory is measured

    bad = sum(1 for row, _ in scan_rows(Path(csv_path), datetime.fromisoformat(NOW)) if row is None)
    print(f"{bad} invalid")


def run(store: str, database_url: str, csv_path: Path, rows: int, folder: Path) -> None:
    config_path = write_project(folder, {"database.url": database_url})
    env = {**os.environ, "NURTURE_SECRET_KEY": SECRET, "NURTURE_CONFIG": str(config_path)}
    command = [sys.executable, "-m", "nurture", "import", str(csv_path), "--now", NOW]
    seconds, peak, out = timed_child(command, folder, env)
    line(f"{store} import", rows, seconds, peak, out)
    seconds, peak, out = timed_child(command, folder, env)
    line(f"{store} import again (merge)", rows, seconds, peak, out)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--scan":
        scan_only(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    add_postgres_option(parser)
    args = parser.parse_args()

    server = postgres_server(args)
    print(
        f"load average before: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    try:
        for size in args.sizes:
            with tempfile.TemporaryDirectory(prefix="nurture-bench-import-") as name:
                folder = Path(name)
                csv_path = folder / "people.csv"
                started = time.perf_counter()
                write_csv(csv_path, size)
                print(
                    f"{size:,} rows ({csv_path.stat().st_size / 1e6:.1f} "
                    f"MB), generated in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                seconds, peak, out = timed_child(
                    [sys.executable, __file__, "--scan", str(csv_path)], REPO, dict(os.environ)
                )
                line("validation pass only", size, seconds, peak, out)
                sqlite_dir = folder / "sqlite"
                sqlite_dir.mkdir()
                run("SQLite", f"sqlite:///{sqlite_dir / 'nurture.db'}", csv_path, size, sqlite_dir)
                if server is not None:
                    database = f"nurture_bench_{os.getpid()}_{size}"
                    pg_dir = folder / "postgres"
                    pg_dir.mkdir()
                    try:
                        run("PostgreSQL", server.create_database(database), csv_path, size, pg_dir)
                    finally:
                        server.drop_database(database)
        if server is None:
            print("PostgreSQL: skipped (set NURTURE_BENCH_POSTGRES_URL, or pass --start-postgres)")
    finally:
        if server is not None:
            server.stop()
    print(f"load average after: {' '.join(f'{n:.1f}' for n in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
