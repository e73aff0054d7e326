"""The practice owner's part in a fault trial (tests/support/chaos.py): their own `nurture`
commands, run as real processes beside the workers or between the settle period's passes.

Each is drawn from a generator of its own (seeded by the trial's seed and the action's
name), so that a seed keeps the faults it had before the action was added.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, Text, func, select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.processes import Project, iso
from tests.support.sendgrid_standin import StandInMessage

OWNER = "owner@practice.example"  # the practice's own address (where the probe goes)
SERIES = "kap-intro"  # the series every reader is in
STOP_TAG = "booked"  # one of its stop_on_tags
# The first email's subject, and the owner's edit of it (publishes).
OLD_SUBJECT = "What is ketamine-assisted psychotherapy?"
NEW_SUBJECT = "A first look at ketamine-assisted psychotherapy"


class OwnerCommand(threading.Thread):
    """One of the owner's `nurture` commands, run a moment after the workers start, beside them."""

    def __init__(self, project: Project, delay: float, *args: str) -> None:
        super().__init__(daemon=True)
        self.project, self.delay, self.args = project, delay, args
        self.answer: subprocess.CompletedProcess[str] | None = None

    def run(self) -> None:
        time.sleep(self.delay)
        self.answer = self.project.run(*self.args)

    def failure(self, allowed: str | None = None) -> str | None:
        """Why the command did not succeed (waiting for it first), or None; a refusal that
        says `allowed` is no failure."""
        self.join(timeout=150)
        if self.answer is None:
            return f"{self.args[0]} {self.args[1]} did not finish in 150 s"
        if self.answer.returncode != 0 and not (allowed and allowed in self.answer.stderr):
            return f"{self.args[0]} {self.args[1]}: {self.answer.stderr.strip()[-300:]}"
        return None

    def succeeded(self) -> bool:
        return self.answer is not None and self.answer.returncode == 0


def publishes(project: Project, seed: int, start: datetime) -> OwnerCommand | None:
    """In about a third of the trials, the owner edits the series and publishes it while the
    workers run: a new subject for the first email, and two days before the second instead
    of three."""
    rng = random.Random(f"owner-{seed}")
    if rng.random() >= 0.35:
        return None
    folder = project.config_path.parent / "campaigns" / SERIES
    first = folder / "01-what-is-kap.md"
    text = first.read_text(encoding="utf-8")
    assert f"subject: {OLD_SUBJECT}" in text
    first.write_text(text.replace(f"subject: {OLD_SUBJECT}", f"subject: {NEW_SUBJECT}", 1), encoding="utf-8")
    plan = folder / "campaign.yaml"
    lines = plan.read_text(encoding="utf-8").split("\n")
    at = lines.index("  - file: 02-the-neuroscience.md") + 1
    assert lines[at].strip() == "delay_days: 3"
    lines[at] = "    delay_days: 2"
    plan.write_text("\n".join(lines), encoding="utf-8")
    publishing = OwnerCommand(
        project, rng.uniform(0, 0.4), "campaign", "publish", SERIES, "--yes", "--now", iso(start)
    )
    publishing.start()
    return publishing


def pauses(project: Project, seed: int, start: datetime, passes: int) -> tuple[OwnerCommand | None, int]:
    """In about a quarter of the trials, the owner pauses the series while the workers run,
    and resumes it before the settle period's pass of the index returned (of `passes`)."""
    rng = random.Random(f"pause-{seed}")
    if rng.random() >= 0.25:
        return None, 0
    pausing = OwnerCommand(project, rng.uniform(0, 0.4), "campaign", "pause", SERIES, "--now", iso(start))
    pausing.start()
    return pausing, rng.randint(1, passes - 1)


# What `newsletter cancel` answers when the newsletter reached everyone first: no failure.
ALREADY_SENT = "has already been sent to everyone"


def cancels(project: Project, seed: int, start: datetime, newsletter_id: int | None) -> OwnerCommand | None:
    """In about two in five trials with a newsletter, the owner cancels it while the workers
    run: nobody new may get it from then on."""
    rng = random.Random(f"cancel-{seed}")
    if newsletter_id is None or rng.random() >= 0.4:
        return None
    cancelling = OwnerCommand(
        project, rng.uniform(0, 0.4), "newsletter", "cancel", str(newsletter_id), "--now", iso(start)
    )
    cancelling.start()
    return cancelling


@dataclass
class ReaderAction:
    """The owner acts on one reader: while the workers run (`before` 0: anyone, who may
    have an email claimed or in flight), or before the settle period's pass of index
    `before` (someone who had an email). `command` comes before the address, `options`
    after it."""

    command: tuple[str, ...]
    options: tuple[str, ...]
    before: int
    rng: random.Random
    address: str | None = None
    at: datetime | None = None

    def args(self, address: str, now: datetime) -> tuple[str, ...]:
        return (*self.command, address, *self.options, "--now", iso(now))

    def gone_by(self, moment: datetime) -> bool:
        """Whether an email that went out in a pass at `moment` came after the action: any pass
        after the workers', and for an action between passes, that pass too."""
        if self.at is None:
            return False
        return moment > self.at or (moment == self.at and self.before > 0)


def erasure(seed: int, passes: int) -> ReaderAction | None:
    """In about a third of the trials, the erasure of a reader (`subscribers forget`): their
    data goes, their delivery rows stay, anonymous."""
    rng = random.Random(f"forget-{seed}")
    if rng.random() >= 0.3:
        return None
    return ReaderAction(("subscribers", "forget"), ("--yes",), rng.randint(0, passes - 1), rng)


def booking(seed: int, passes: int) -> ReaderAction | None:
    """In about a third of the trials, the series' stop tag on a reader (`subscribers tag ...
    booked`): the series ends for them (a newsletter still goes)."""
    rng = random.Random(f"booked-{seed}")
    if rng.random() >= 0.3:
        return None
    return ReaderAction(("subscribers", "tag"), (STOP_TAG,), rng.randint(0, passes - 1), rng)


def act_beside_workers(
    project: Project, action: ReaderAction, addresses: list[str], start: datetime, spare: str | None
) -> OwnerCommand:
    """The action on any reader but `spare`, a moment after the workers start, beside them."""
    action.address, action.at = action.rng.choice([a for a in addresses if a != spare]), start
    command = OwnerCommand(project, action.rng.uniform(0, 0.4), *action.args(action.address, start))
    command.start()
    return command


def act(
    project: Project, action: ReaderAction, messages: list[StandInMessage], now: datetime, spare: str | None
) -> str | None:
    """The action on a reader who had an email so far, but `spare`; why it failed, or None."""
    had = sorted({message.to_email for message in messages if message.to_email not in (OWNER, spare)})
    if not had:
        return None
    address = action.rng.choice(had)
    answer = project.run(*action.args(address, now))
    if answer.returncode != 0:
        return f"{' '.join(action.command)}: {answer.stderr.strip()[-300:]}"
    action.address, action.at = address, now
    return None


def traces(app: App, address: str) -> list[str]:
    """Every table.column whose text still holds `address` (in any case): none, once erased."""
    found = []
    needle = f"%{address.lower()}%"
    with transaction(app.engine) as session:
        for table in m.Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, String | Text):
                    hits = session.scalar(
                        select(func.count()).select_from(table).where(func.lower(column).like(needle))
                    )
                    if hits:
                        found.append(f"{table.name}.{column.name}")
    return found
