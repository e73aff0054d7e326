"""`nurture` run as a real process: one command at a time, or a project whose commands
overlap (several `send-due` at once, kill -9 mid-run) on one store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from nurture.config import load_config
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import REPO, SECRET, at, open_app, write_project
from tests.support.sendgrid_standin import SendGridStandIn

# When each of the five steps of kap-intro is due (delays 0, 3, 4, 4, 5 days), at 10:00 New York time.
STEP_TIMES = [
    at("2026-12-01 15:00"),
    at("2026-12-04 15:00"),
    at("2026-12-08 15:00"),
    at("2026-12-12 15:00"),
    at("2026-12-17 15:00"),
]


def midday_zone(moment: datetime) -> str:
    """A fixed-offset zone in which `moment` falls near local noon. The daemon tests run
    on the real clock, so their subscribers live where the send window is wide open,
    whatever time of day the suite happens to run."""
    offset = 12 - moment.astimezone(UTC).hour  # -11 .. +12 hours, all valid zones
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT signs are inverted


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any NURTURE_ setting or SendGrid key, plus the test secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_") and k != "SENDGRID_API_KEY"}
    env.update(NURTURE_SECRET_KEY=SECRET, **extra)
    return env


def run_nurture(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m nurture ARGS` in `cwd`, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "nurture", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()


class Project:
    """A project folder whose `nurture` processes share one store (and the SendGrid stand-in, if given)."""

    def __init__(
        self, tmp_path: Path, database_url: str, standin: SendGridStandIn | None, **overrides: object
    ) -> None:
        settings: dict[str, object] = {"database.url": database_url, **overrides}
        if standin is not None:
            settings["delivery.transport"] = "sendgrid"
        self.config_path = write_project(tmp_path, settings)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "NO_PROXY": "127.0.0.1,localhost",
            "NURTURE_SECRET_KEY": SECRET,
            "NURTURE_CONFIG": str(self.config_path),
            "PYTHONPATH": str(REPO),
        }
        if standin is not None:
            self.env |= {"SENDGRID_API_KEY": "SG.test", "NURTURE_SENDGRID_HOST": standin.url}
        self.app = open_app(load_config(self.config_path, environ=self.env))

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "nurture", *args],
            env=self.env,
            cwd=self.config_path.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def statuses(self) -> Counter[str]:
        with transaction(self.app.engine) as session:
            return Counter(
                dict(
                    session.execute(select(m.Delivery.status, func.count()).group_by(m.Delivery.status)).all()
                )
            )

    def claimed_subscribers(self) -> set[int]:
        with transaction(self.app.engine) as session:
            return set(
                session.scalars(
                    select(m.Delivery.subscriber_id).where(m.Delivery.status == m.DeliveryStatus.CLAIMED)
                )
            )

    def emails(self, ids: list[int]) -> dict[int, str]:
        with transaction(self.app.engine) as session:
            return dict(
                session.execute(
                    select(m.Subscriber.id, m.Subscriber.email).where(m.Subscriber.id.in_(ids))
                ).all()
            )
