"""Send one series step to N subscribers through the SendGrid stand-in (50 ms per request),
beside a minimal script that does only the unavoidable work (benchmarks/minimal_send.py).

    .venv/bin/python benchmarks/bench_send.py [--sizes 10000 100000] [--latency 0.05]
    .venv/bin/python benchmarks/bench_send.py --size 1000000
    .venv/bin/python benchmarks/bench_send.py --sizes 100000 --start-postgres --workers 1 2 4

For each size a store is filled once (in a child process) and copied, so every run
starts from the same rows. Then, each in its own processes and against a fresh
stand-in: the real `nurture send-due` (with --workers N, N of them at once), an idle
pass right after (nothing left to send), and the minimal script, plain and with
--lawful (also a signed unsubscribe link per email and the enrollment's advance, which
no lawful, working series can leave out). Each line prints the time, emails per
second, CPU time, peak RSS and, for sends, the minimal script's time divided by this
one (1.0 would be as fast as the minimal script); a second line the same against the
lawful one.

SQLite by default; with --start-postgres (a throwaway local cluster) or
NURTURE_BENCH_POSTGRES_URL, PostgreSQL instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from benchmarks.harness import (
    Run,
    Store,
    add_postgres_option,
    each_size,
    postgres_server,
    project,
    send_with_standin,
)
from nurture.config import load_config
from nurture.store.db import refresh_statistics
from tests.support.factories import active_subscribers, at, close_opened, open_app

REPO = Path(__file__).resolve().parents[1]
START = at("2026-12-01 14:00")
SEND_AT = "2026-12-01T15:00:00+00:00"
MINIMAL = str(REPO / "benchmarks" / "minimal_send.py")


def fill(config_path: str, size: int) -> None:
    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    for start in range(0, size, 100_000):  # in slices, so the filling child stays small too
        active_subscribers(app, min(100_000, size - start), START, prefix=f"p{start}-")
    # As `nurture import` does, and autovacuum would by the time of a real pass: a pass
    # seconds after the store was filled would otherwise be planned for empty tables.
    refresh_statistics(app.engine, ("subscribers", "enrollments"))
    close_opened()


def run_minimal(
    args: argparse.Namespace, folder: Path, url: str, overrides: dict[str, object], size: int, *flags: str
) -> Run:
    """The minimal script on its own copy of the store, against a fresh stand-in."""
    _, env = project(folder / f"minimal-run{'-'.join(flags)}", url, "STANDIN", overrides)
    command = [sys.executable, MINIMAL, url, "STANDIN", SEND_AT, "--concurrency", str(args.concurrency)]
    return send_with_standin(args.latency, [[*command, *flags]], env, REPO, size)


def bench_size(size: int, args: argparse.Namespace, folder: Path, server: object) -> None:
    store = Store(folder, server)
    overrides = {"delivery.batch_size": args.batch_size, "delivery.concurrency": args.concurrency}
    try:
        config_path, env = project(folder / "fill", store.url, "http://unused", overrides)
        subprocess.run([sys.executable, __file__, "--fill", str(config_path), str(size)], env=env, check=True)
        copies = {"minimal": store.copy("minimal"), "lawful": store.copy("lawful")}
        for workers in args.workers:
            copies[f"w{workers}"] = store.copy(f"w{workers}")
        kind = "PostgreSQL" if server else "SQLite"
        print(
            f"{size:,} subscribers due, {kind}, batch {args.batch_size}, {args.concurrency} "
            f"requests in flight per worker, {args.latency * 1000:.0f} ms per request",
            flush=True,
        )
        minimal = run_minimal(args, folder, copies["minimal"], overrides, size)
        print(minimal.line("minimal script", size), flush=True)
        lawful = run_minimal(args, folder, copies["lawful"], overrides, size, "--lawful")
        print(lawful.line("minimal script, --lawful", size), flush=True)
        for workers in args.workers:
            run_dir = folder / f"run-w{workers}"
            _, env = project(run_dir, copies[f"w{workers}"], "STANDIN", overrides)
            command = [sys.executable, "-m", "nurture", "send-due", "--now", SEND_AT]
            sent = send_with_standin(args.latency, [command] * workers, env, run_dir, size)
            print(
                sent.line(f"send-due, {workers} worker(s)", size, minimal) + f"  [{sent.output}]", flush=True
            )
            print(sent.line("  the same, against --lawful", size, lawful), flush=True)
            idle = send_with_standin(args.latency, [command], env, run_dir, 0)
            print(idle.line("idle pass after it", 0) + f"  [{idle.output}]", flush=True)
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
    parser.add_argument("--sizes", "--size", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=None,
        help="send-due processes at once (default 1; 1 2 4 on PostgreSQL)",
    )
    add_postgres_option(parser)
    args = parser.parse_args()
    server = postgres_server(args)
    args.workers = args.workers or ([1, 2, 4] if server else [1])
    each_size(args.sizes, "nurture-bench-send-", bench_size, args, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
