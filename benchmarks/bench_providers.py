"""One series step to N subscribers through each provider's stand-in, each answering after 50 ms.

    .venv/bin/python benchmarks/bench_providers.py [--size 2000] [--latency 0.05] [--ses-rate 200]

- sendgrid: the SendGrid stand-in, 50 ms per request of up to 500 emails, 4 in flight;
- ses: the SES v2 stand-in through boto3, 50 ms per SendEmail call, paced at the
  account's MaxSendRate (`--ses-rate`, what GetAccount reports; a new production
  account starts at 14 a second and AWS raises it on request);
- smtp: aiosmtpd with STARTTLS, 50 ms per message's data, over `smtp.pool_size` (4)
  kept connections.

Each run is a real `nurture send-due` in its own process, on a fresh copy of the same
SQLite store; the line gives the time, emails per second and the process's CPU time,
and checks that the stand-in got every email exactly once.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from nurture.config import load_config
from tests.support.aws import AWS_TEST_ENV, CONFIGURATION_SET, REGION
from tests.support.factories import SECRET, active_subscribers, at, close_opened, open_app, write_project
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.ses_standin import SesStandIn
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer

START = at("2026-12-01 14:00")
SEND_AT = "2026-12-01T15:00:00+00:00"


def base_env(config_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(config_path.parent),
        "NO_PROXY": "127.0.0.1,localhost",
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_CONFIG": str(config_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        **AWS_TEST_ENV,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }


def run(provider: str, folder: Path, store: Path, size: int, args: argparse.Namespace) -> str:
    work = folder / provider
    work.mkdir()
    shutil.copy(store, work / "nurture.db")
    settings: dict[str, object] = {
        "database.url": f"sqlite:///{work / 'nurture.db'}",
        "delivery.transport": provider,
        "delivery.batch_size": 500,
        "delivery.concurrency": 4,
    }
    server: object
    if provider == "sendgrid":
        server = SendGridStandIn(api_key="SG.bench").start()
        server.latency = args.latency  # type: ignore[attr-defined]
        extra = {"SENDGRID_API_KEY": "SG.bench", "NURTURE_SENDGRID_HOST": server.url}  # type: ignore[attr-defined]
    elif provider == "ses":
        server = SesStandIn(max_send_rate=args.ses_rate, latency=args.latency).start()
        settings |= {"ses.region": REGION, "ses.configuration_set": CONFIGURATION_SET}
        extra = {"AWS_ENDPOINT_URL_SESV2": server.url}  # type: ignore[attr-defined]
    else:
        (work / "tls").mkdir()
        server = SmtpServer(work / "tls").__enter__()
        server.latency = args.latency  # type: ignore[attr-defined]
        settings |= {
            "smtp.host": "127.0.0.1",
            "smtp.port": server.port,  # type: ignore[attr-defined]
            "smtp.username": USERNAME,
            "smtp.bounce_domain": "bounces.example.org",
        }
        extra = {"NURTURE_SMTP_PASSWORD": PASSWORD, "SSL_CERT_FILE": str(server.cert_file)}  # type: ignore[attr-defined]
    config_path = write_project(work, settings)
    env = base_env(config_path) | extra
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "nurture", "send-due", "--now", SEND_AT],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"{provider}: send-due failed:\n{result.stderr}")
        if provider == "sendgrid" or provider == "ses":
            received = Counter(message.to_email for message in server.messages())  # type: ignore[attr-defined]
        else:
            received = Counter(message.rcpt_to for message in server.messages())  # type: ignore[attr-defined]
        once = len(received) == size and set(received.values()) == {1}
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return (
            f"| {provider} | {size:,} | {elapsed:.2f} s | {size / elapsed:,.0f} | {cpu:.2f} s | "
            f"{'yes' if once else 'NO'} |"
        )
    finally:
        if provider == "smtp":
            server.__exit__(None, None, None)  # type: ignore[attr-defined]
        else:
            server.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--ses-rate", type=float, default=200.0)
    parser.add_argument("--providers", nargs="+", default=["sendgrid", "ses", "smtp"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nurture-bench-providers-") as name:
        folder = Path(name)
        (folder / "fill").mkdir()
        config_path = write_project(
            folder / "fill", {"database.url": f"sqlite:///{folder / 'fill' / 'nurture.db'}"}
        )
        app = open_app(load_config(config_path, environ={"NURTURE_SECRET_KEY": SECRET}))
        active_subscribers(app, args.size, START)
        close_opened()
        print(
            f"one series step to {args.size:,} subscribers, "
            f"{args.latency * 1000:.0f} ms per request or message, "
            f"SES at {args.ses_rate:g}/s, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(
            "| Provider | Emails | Time | Emails/s | CPU | Each once |\n|---|---|---|---|---|---|", flush=True
        )
        for provider in args.providers:
            print(run(provider, folder, folder / "fill" / "nurture.db", args.size, args), flush=True)


if __name__ == "__main__":
    main()
