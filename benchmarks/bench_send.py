"""Send one step to N subscribers through the SendGrid stand-in with 50 ms latency per request.

Measures the real `nurture send-due` command end to end (claim, render, HTTP, record),
in its own process, and its peak memory (from wait4). The stand-in runs as another
process in count-only mode, so its work does not share our interpreter.

    .venv/bin/python benchmarks/bench_send.py [--sizes 10000 100000] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.factories import SECRET, active_subscribers, at, open_app, close_opened, write_project  # noqa: E402
from nurture.config import load_config  # noqa: E402

START = at("2026-12-01 14:00")
SEND_AT = "2026-12-01T15:00:00+00:00"


def start_standin(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sendgrid_standin", "--port", "0", "--latency", str(latency), "--api-key", "SG.bench", "--count-only"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip() if process.stdout else ""
    if not line.startswith("READY "):
        raise SystemExit(f"stand-in did not start: {line!r}")
    return process, line.split(" ", 1)[1]


def run_once(size: int, latency: float, batch_size: int, concurrency: int) -> dict[str, float]:
    standin, url = start_standin(latency)
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            overrides = {"delivery.transport": "sendgrid", "delivery.batch_size": batch_size, "delivery.concurrency": concurrency}
            config_path = write_project(tmp, overrides)
            env = {
                **os.environ,
                "NURTURE_SECRET_KEY": SECRET,
                "SENDGRID_API_KEY": "SG.bench",
                "NURTURE_SENDGRID_HOST": url,
                "NO_PROXY": "127.0.0.1,localhost",
                "NURTURE_CONFIG": str(config_path),
            }
            # Fill the store in another process: a child's ru_maxrss starts at its parent's
            # peak RSS (Linux carries it across fork/exec), so filling it here would make
            # the sender's "peak" grow with the list whatever the sender does.
            subprocess.run([sys.executable, __file__, "--fill", str(config_path), str(size)], env=env, check=True)
            began = time.perf_counter()
            sender = subprocess.Popen([sys.executable, "-m", "nurture", "send-due", "--now", SEND_AT], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _, status, usage = os.wait4(sender.pid, 0)
            elapsed = time.perf_counter() - began
            out = sender.stdout.read() if sender.stdout else ""
            err = sender.stderr.read() if sender.stderr else ""
            if status != 0:
                raise SystemExit(f"send-due failed: {err}")
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/_standin/stats") as answer:
                stats = json.loads(answer.read())
            if stats["messages"] != size:
                raise SystemExit(f"stand-in received {stats['messages']} messages, expected {size}: {out}")
            return {"size": size, "seconds": elapsed, "per_second": size / elapsed, "peak_mib": usage.ru_maxrss / 1024, "requests": stats["requests"], "summary": out.strip()}  # type: ignore[dict-item]
    finally:
        standin.terminate()
        standin.wait(timeout=10)


def fill(config_path: str, size: int) -> None:
    app = open_app(load_config(Path(config_path), environ=dict(os.environ)))
    active_subscribers(app, size, START)
    close_opened()


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--fill":
        fill(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(f"send-due end to end, SQLite, batch {args.batch_size}, {args.concurrency} requests in flight, {args.latency * 1000:.0f} ms per request")
    for size in args.sizes:
        result = run_once(size, args.latency, args.batch_size, args.concurrency)
        print(
            f"{result['size']:>8,} emails  {result['seconds']:6.2f} s  {result['per_second']:8,.0f} emails/s  "
            f"peak RSS {result['peak_mib']:6.1f} MiB  ({result['requests']} requests)  [{result['summary']}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
