"""The fault campaign of issue 21, long run: `python benchmarks/chaos.py --trials 200`.

Each trial is reproducible by its seed (`--seed-from N --trials 1`); see
tests/support/chaos.py for what a trial does and checks. PostgreSQL trials need
`initdb` on the PATH (or NURTURE_TEST_POSTGRES_URL); `--databases sqlite` skips them.
Prints one line per trial and the totals; exits 1 if any invariant failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.chaos import TrialResult, run_trial  # noqa: E402
from tests.support.postgres import PostgresServer, database_name  # noqa: E402
from tests.support.sendgrid_standin import SendGridStandIn  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed-from", type=int, default=0)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    databases = args.databases.split(",")
    server = PostgresServer.start() if "postgresql" in databases else None
    results: list[TrialResult] = []
    started = time.monotonic()
    try:
        for number in range(args.trials):
            seed = args.seed_from + number
            database = databases[number % len(databases)]
            with tempfile.TemporaryDirectory() as folder, SendGridStandIn() as standin:
                path = Path(folder)
                if database == "sqlite":
                    url = f"sqlite:///{path / 'nurture.db'}"
                else:
                    assert server is not None
                    name = database_name(f"chaos{seed}")
                    url = server.create_database(name)
                try:
                    result = run_trial(seed, path, url, database, standin)
                finally:
                    if database != "sqlite":
                        assert server is not None
                        server.drop_database(name)
            results.append(result)
            print(("ok   " if result.ok else "FAIL ") + result.line(), flush=True)
    finally:
        if server is not None:
            server.stop()
    failed = [r for r in results if not r.ok]
    print(
        f"{len(results)} trials in {time.monotonic() - started:.0f} s "
        f"({sum(r.database == 'sqlite' for r in results)} SQLite, "
        f"{sum(r.database != 'sqlite' for r in results)} PostgreSQL), "
        f"{sum(r.people for r in results)} people, "
        f"duplicates {sum(r.duplicates for r in results)}, lost {sum(r.lost for r in results)}, "
        f"stuck {sum(r.stuck for r in results)}, mis-applied {sum(r.misapplied for r in results)}, "
        f"over a reader's limit {sum(r.over_limit for r in results)}, "
        f"unsubscribed {sum(r.unsubscribed for r in results)}, "
        f"published mid-run {sum(r.published for r in results)}, "
        f"paused mid-run {sum(r.paused for r in results)}, "
        f"owner's commands failed {sum(r.owner_failed for r in results)}, "
        f"stale copy {sum(r.stale_copy for r in results)}, "
        f"sent while paused {sum(r.while_paused for r in results)}, "
        f"erased mid-run {sum(r.erased for r in results)}, "
        f"sent after an erasure {sum(r.after_erasure for r in results)}, "
        f"erased addresses kept {sum(r.erased_traces for r in results)}, "
        f"booked mid-run {sum(r.booked for r in results)}, "
        f"series after a booking {sum(r.after_booking for r in results)}, "
        f"newsletters cancelled mid-run {sum(r.cancelled for r in results)}, "
        f"sent after a cancel {sum(r.after_cancel for r in results)}, "
        f"sent after an unsubscribe {sum(r.unhonoured for r in results)}, "
        f"left to the owner (outage > retry window) {sum(r.left_to_owner for r in results)}, "
        f"refused by the provider on every attempt {sum(r.refused for r in results)}, "
        f"failed trials {len(failed)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
