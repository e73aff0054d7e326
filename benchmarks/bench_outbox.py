"""Send one series step to N subscribers through the outbox (the default transport of a
fresh install and the demo's), and time a read-only command while the pass runs.

    .venv/bin/python benchmarks/bench_outbox.py [--sizes 10000 100000] [--readers 3] [--outbox-in /dev/shm]
                                                [--against-sendgrid]

For each size a store is filled once (in a child process). Then `nurture send-due`
writes every email as an .eml file; while it runs, `nurture subscribers list --status
active` starts every second (up to --readers times) and each one's time is printed:
a pass must not block the people reading the store. The emails written are counted
in the outbox folder. With --against-sendgrid the same pass then runs on a copy of the
filled store through the SendGrid stand-in (50 ms a request), and the outbox's time is
printed as a multiple of it: the outbox should be at least as fast.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from benchmarks.harness import Store, each_size, project, send_with_standin
from nurture.config import load_config
from tests.support.factories import active_subscribers, at, close_opened, open_app

REPO = Path(__file__).resolve().parents[1]
START = at("2026-12-01 14:00")
SEND_AT = "2026-12-01T15:00:00+00:00"


def fill(config_path: str, size: int) -> None:
    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    for start in range(0, size, 100_000):
        active_subscribers(app, min(100_000, size - start), START, prefix=f"p{start}-")
    close_opened()


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def bench_size(size: int, args: argparse.Namespace, folder: Path, server: object) -> None:
    store = Store(folder, None)
    config_path, env = project(folder / "fill", store.url, "http://unused", {})
    subprocess.run([sys.executable, __file__, "--fill", str(config_path), str(size)], env=env, check=True)
    sendgrid_copy = store.copy("sendgrid") if args.against_sendgrid else None
    run_dir = folder / "run"
    outbox = run_dir / "outbox"
    if args.outbox_in:
        # Elsewhere than the store, e.g. tmpfs: what the file system costs, apart from the rest.
        outbox = Path(tempfile.mkdtemp(prefix="outbox-", dir=args.outbox_in))
    _, env = project(
        run_dir,
        store.url,
        "http://unused",
        {"delivery.transport": "outbox", "delivery.outbox_dir": str(outbox)},
    )
    nurture = [sys.executable, "-m", "nurture"]
    send_due = [*nurture, "send-due", "--now", SEND_AT]
    idle_read = timed([*nurture, "subscribers", "list", "--status", "active"], env, run_dir)
    began = time.perf_counter()
    send = subprocess.Popen(send_due, env=env, cwd=run_dir, stdout=subprocess.PIPE, text=True)
    reads = []
    while send.poll() is None and len(reads) < args.readers:
        time.sleep(1)
        if send.poll() is None:
            reads.append(timed([*nurture, "subscribers", "list", "--status", "active"], env, run_dir))
    output = send.communicate()[0].strip()
    seconds = time.perf_counter() - began
    if send.returncode:
        raise SystemExit(f"send-due failed ({send.returncode}): {output}")
    written = sum(1 for _ in outbox.glob("*.eml"))
    if args.outbox_in:
        shutil.rmtree(outbox)
    if written != size:
        raise SystemExit(f"the outbox holds {written} emails, expected {size}: {output}")
    print(
        f"  {size:>9,} emails through the outbox  {seconds:7.2f} s  {size / seconds:8,.0f}/s  [{output}]\n"
        f"  `subscribers list` alone {idle_read:5.2f} s; during the pass "
        + (", ".join(f"{read:5.2f} s" for read in reads) or "(the pass ended first)"),
        flush=True,
    )
    if sendgrid_copy is not None:
        # The same pass and settings on the same store as it was, through SendGrid's API instead.
        sendgrid_dir = folder / "run-sendgrid"
        _, env = project(sendgrid_dir, sendgrid_copy, "STANDIN", {})
        sent = send_with_standin(0.05, [send_due], env, sendgrid_dir, size)
        print(
            f"  {size:>9,} emails through SendGrid    {sent.seconds:7.2f} s  {size / sent.seconds:8,.0f}/s"
            f"  (the outbox took {seconds / sent.seconds:4.2f} times as long)",
            flush=True,
        )


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--fill":
        fill(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", "--size", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument(
        "--against-sendgrid",
        action="store_true",
        help="also time the same pass through the SendGrid stand-in",
    )
    parser.add_argument(
        "--outbox-in", type=Path, help="put the outbox in this folder (e.g. /dev/shm), not beside the store"
    )
    args = parser.parse_args()
    each_size(args.sizes, "nurture-bench-outbox-", bench_size, args, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
