"""Replaying an owner's edit of a live series on subscribers at every position.

Shared by the series versions tests on SQLite and on PostgreSQL.

People are enrolled on a schedule such that, when the owner edits kap-intro, two
of them have had 0, 1, 2, 3, 4 and all 5 emails. The sending pass runs twice a day
(14:00 and 20:00 UTC, inside New York's 09:00-17:00 window). What each person
received is read from the transport - what actually went out - not from the
store, whose unique key would hide a double send.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import select, text

from nurture.app import App
from nurture.content.campaigns import load_campaign
from nurture.providers.recording import RecordingTransport
from nurture.sending.sendpass import send_due
from nurture.series.drafts import load_draft
from nurture.series.plan import PublishPlan
from nurture.series.publish import publish
from nurture.store import models as m
from nurture.store.db import make_engine, transaction
from nurture.store.migrate import upgrade
from tests.support.factories import active_subscribers, at, make_app, write_project

START = at("2026-12-01 14:00")  # 09:00 in New York
EDIT_AT = START + timedelta(days=20) - timedelta(hours=2)
AFTER = EDIT_AT + timedelta(days=40)  # every cohort has had every step by then
KEYS = ["01-what-is-kap", "02-the-neuroscience", "03-is-kap-safe", "04-a-dosing-session", "05-next-steps"]
DELAYS = [0, 3, 4, 4, 5]
# Day each cohort is enrolled (at 14:00 UTC) so that by EDIT_AT it has had this many emails.
ENROLL_DAY = {5: 3, 4: 8, 3: 12, 2: 16, 1: 19}
NEW_SUBJECT = "Before a session, a breathing practice"
EDITED_SUBJECT = "Inside the brain during KAP (revised)"

Step = tuple[str, float, str | None]  # file, delay_days, key


def write_steps(folder: Path, steps: list[Step]) -> None:
    path = folder / "campaign.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["steps"] = [
        {"file": file, "delay_days": delay, **({"key": key} if key else {})} for file, delay, key in steps
    ]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def original_steps() -> list[Step]:
    return [(f"{key}.md", float(delay), None) for key, delay in zip(KEYS, DELAYS, strict=True)]


def new_email(folder: Path, name: str, subject: str) -> None:
    text = (folder / "03-is-kap-safe.md").read_text(encoding="utf-8")
    head, body = text.split("\n---\n", 1)
    head = "\n".join(
        f"subject: {subject}" if line.startswith("subject:") else line for line in head.splitlines()
    )
    (folder / name).write_text(
        head + "\n---\nA short practice to try before a session.\n\n" + body, encoding="utf-8"
    )


# ---------------------------------------------------------------- the edits


def insert(folder: Path) -> None:
    new_email(folder, "02b-breathing.md", NEW_SUBJECT)
    steps = original_steps()
    write_steps(folder, [steps[0], ("02b-breathing.md", 2.0, None), *steps[1:]])


def remove(folder: Path) -> None:
    steps = original_steps()
    write_steps(folder, [steps[0], *steps[2:]])


def reorder(folder: Path) -> None:
    steps = original_steps()
    write_steps(folder, [steps[0], steps[2], steps[1], *steps[3:]])


def edit(folder: Path) -> None:
    path = folder / "02-the-neuroscience.md"
    text = path.read_text(encoding="utf-8")
    lines = [
        f"subject: {EDITED_SUBJECT}" if line.startswith("subject:") else line for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\nOne more paragraph, added later.\n", encoding="utf-8")


def delay(folder: Path) -> None:
    steps = original_steps()
    steps[3] = (steps[3][0], 1.0, None)
    write_steps(folder, steps)


def rename_keeping_key(folder: Path) -> None:
    (folder / "03-is-kap-safe.md").rename(folder / "03-safety.md")
    steps = original_steps()
    steps[2] = ("03-safety.md", steps[2][1], "03-is-kap-safe")
    write_steps(folder, steps)


def rename_without_key(folder: Path) -> None:
    (folder / "03-is-kap-safe.md").rename(folder / "03-safety.md")
    steps = original_steps()
    steps[2] = ("03-safety.md", steps[2][1], None)
    write_steps(folder, steps)


EDITS: dict[str, Callable[[Path], None]] = {
    "insert": insert,
    "remove": remove,
    "reorder": reorder,
    "edit": edit,
    "delay": delay,
    "rename-keeping-key": rename_keeping_key,
    "rename-without-key": rename_without_key,
}


# ---------------------------------------------------------------- the replay


@dataclass
class Replay:
    app: App
    transport: RecordingTransport
    cohorts: dict[int, list[int]] = field(default_factory=dict)  # emails had at the edit -> subscriber ids
    emails: dict[int, str] = field(default_factory=dict)
    # address -> [(when, subject)] in order, before and after publishing
    before: dict[str, list[tuple[datetime, str]]] = field(default_factory=lambda: defaultdict(list))
    after: dict[str, list[tuple[datetime, str]]] = field(default_factory=lambda: defaultdict(list))
    clock: datetime = START - timedelta(days=1)
    published: bool = False

    @property
    def folder(self) -> Path:
        return self.app.config.campaigns_dir / "kap-intro"

    def run_until(self, end: datetime) -> None:
        """Sending passes at 14:00 and 20:00 UTC of every day after the clock, up to `end`."""
        day = self.clock.replace(hour=0, minute=0)
        while day <= end:
            for hour in (14, 20):
                moment = day.replace(hour=hour)
                if self.clock < moment <= end:
                    send_due(self.app, moment)
                    for record in self.transport.take():
                        (self.after if self.published else self.before)[record.to_email].append(
                            (moment, record.subject)
                        )
            day += timedelta(days=1)
        self.clock = max(self.clock, end)

    def enroll(self, had: int, moment: datetime) -> None:
        ids = active_subscribers(self.app, 2, moment, prefix=f"had{had}-")
        self.cohorts[had] = ids
        for index, subscriber_id in enumerate(ids):
            self.emails[subscriber_id] = f"had{had}-{index}@example.com"

    def publish(self, *, only_ahead: bool = False) -> PublishPlan:
        plan = publish(self.app, load_draft(self.app.config, "kap-intro"), self.clock, only_ahead=only_ahead)
        self.published = True
        return plan

    def subjects_before(self, subscriber_id: int) -> list[str]:
        return [subject for _, subject in self.before[self.emails[subscriber_id]]]

    def subjects_after(self, subscriber_id: int) -> list[str]:
        return [subject for _, subject in self.after[self.emails[subscriber_id]]]

    def sends_after(self, subscriber_id: int) -> list[tuple[datetime, str]]:
        return self.after[self.emails[subscriber_id]]

    def last_before(self, subscriber_id: int) -> datetime | None:
        sends = self.before[self.emails[subscriber_id]]
        return sends[-1][0] if sends else None


def replay(tmp_path: Path, database_url: str | None = None) -> Replay:
    """A project whose people are at every position of kap-intro at EDIT_AT (nothing edited yet)."""
    app = make_app(tmp_path, database_url=database_url)
    transport = RecordingTransport()
    app.use_transport(transport)
    state = Replay(app, transport)
    for had in (5, 4, 3, 2, 1):
        moment = START + timedelta(days=ENROLL_DAY[had])
        state.run_until(moment - timedelta(minutes=1))
        state.enroll(had, moment)
    state.run_until(EDIT_AT)
    state.enroll(0, EDIT_AT)
    return state


def subjects_by_key(folder: Path) -> dict[str, str]:
    """Step key -> subject, as the series' files are now."""
    return {step.step_key: step.email.subject for step in load_campaign(folder).steps}


def expected_after(had: int, new_keys: list[str], skipped: set[str]) -> list[str]:
    """The default rule: every step of the new version not had yet, in the new order
    (minus --only-ahead skips)."""
    return [key for key in new_keys if key not in KEYS[:had] and key not in skipped]


def check_replay(
    replay: Replay,
    old_subjects: dict[str, str],
    new_subjects: dict[str, str],
    skipped: dict[int, set[str]] | None = None,
) -> None:
    """Nobody gets a key twice; everyone gets each step of the new version they lacked, once,
    in order, spaced by its delay."""
    new_keys = list(new_subjects)
    key_of = {subject: key for key, subject in new_subjects.items()}
    assert len(key_of) == len(new_subjects), (
        "each step of the new version needs its own subject for this check"
    )
    delays = {step.step_key: step.delay_days for step in load_campaign(replay.folder).steps}
    for had, ids in replay.cohorts.items():
        for subscriber_id in ids:
            assert replay.subjects_before(subscriber_id) == [old_subjects[key] for key in KEYS[:had]]
            received = [
                key_of.get(subject, f"unknown subject {subject!r}")
                for subject in replay.subjects_after(subscriber_id)
            ]
            assert received == expected_after(had, new_keys, (skipped or {}).get(had, set())), (
                f"had {had} before the edit"
            )
            previous = replay.last_before(subscriber_id) or EDIT_AT
            for when, subject in replay.sends_after(subscriber_id):
                assert when >= previous + timedelta(days=delays[key_of[subject]]), (
                    f"{subject!r} came early for had {had}"
                )
                previous = when


# ---------------------------------------------------------------- rows from before step keys


def legacy_store_then_upgrade(tmp_path: Path, database_url: str) -> Replay:
    """A store at migration 0001 with one person mid-series (had steps 1 and 2) and a
    newsletter delivery, upgraded to the head; then the app opened on it (version 1)."""
    write_project(tmp_path, {"database.url": database_url})
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO subscribers (id, email, email_key, timezone, status, "
                    "created_at, confirmed_at, status_changed_at, confirm_nonce) "
                    "VALUES (1, 'had2-0@example.com', 'had2-0@example.com', 'America/New_York', "
                    "'active', :t, :t, :t, 0)"
                ),
                {"t": START.replace(tzinfo=None)},
            )
            connection.execute(
                text(
                    "INSERT INTO enrollments "
                    "(id, subscriber_id, campaign, next_step, next_due_at, status, enrolled_at, updated_at) "
                    "VALUES (1, 1, 'kap-intro', 3, :due, 'active', :t, :t)"
                ),
                {"t": START.replace(tzinfo=None), "due": (START + timedelta(days=7)).replace(tzinfo=None)},
            )
            connection.execute(
                text(
                    "INSERT INTO newsletters (id, source_file, subject, content, send_at_local, "
                    "timezone_mode, first_due_at, status, created_at, updated_at) "
                    "VALUES (1, 'n.md', 'A note', '{}', '2026-12-02T09:00:00', 'practice', "
                    ":t, 'sent', :t, :t)"
                ),
                {"t": START.replace(tzinfo=None)},
            )
            for step, days in ((1, 0), (2, 3)):
                connection.execute(
                    text(
                        "INSERT INTO deliveries "
                        "(subscriber_id, stream, step, status, claimed_at, finished_at) "
                        "VALUES (1, 'kap-intro', :step, 'sent', :t, :t)"
                    ),
                    {"step": step, "t": (START + timedelta(days=days)).replace(tzinfo=None)},
                )
            connection.execute(
                text(
                    "INSERT INTO deliveries "
                    "(subscriber_id, stream, step, newsletter_id, status, claimed_at, finished_at) "
                    "VALUES (1, 'newsletter:1', 1, 1, 'sent', :t, :t)"
                ),
                {"t": (START + timedelta(days=1)).replace(tzinfo=None)},
            )
        upgrade(engine)
        with engine.connect() as connection:
            keys = sorted(connection.execute(text("SELECT stream, step, step_key FROM deliveries")).all())
        assert keys == [("kap-intro", 1, "#1"), ("kap-intro", 2, "#2"), ("newsletter:1", 1, "newsletter")]
    finally:
        engine.dispose()
    app = make_app(tmp_path, database_url=database_url)  # opening it creates version 1 and adopts the rows
    transport = RecordingTransport()
    app.use_transport(transport)
    state = Replay(
        app,
        transport,
        cohorts={2: [1]},
        emails={1: "had2-0@example.com"},
        clock=START + timedelta(days=3, hours=8),
    )
    state.before["had2-0@example.com"] += [
        (START, "(sent before the upgrade)"),
        (START + timedelta(days=3), "(sent before the upgrade)"),
    ]
    return state


def check_legacy_rows_adopted(tmp_path: Path, database_url: str) -> None:
    state = legacy_store_then_upgrade(tmp_path, database_url)
    with transaction(state.app.engine) as session:
        rows = sorted(
            session.execute(
                select(m.Delivery.stream, m.Delivery.step, m.Delivery.step_key, m.Delivery.series_version)
            ).all()
        )
        enrollment = session.execute(
            select(m.Enrollment.next_step, m.Enrollment.next_step_key, m.Enrollment.version)
        ).one()
    assert rows == [
        ("kap-intro", 1, KEYS[0], 1),
        ("kap-intro", 2, KEYS[1], 1),
        ("newsletter:1", 1, "newsletter", None),
    ]
    assert tuple(enrollment) == (3, KEYS[2], 1)
    # Then the owner inserts an email before step 2 and publishes: the person had steps
    # 1 and 2 by position; they get the new email and steps 3-5, never 1 or 2 again.
    EDITS["insert"](state.folder)
    new = subjects_by_key(state.folder)
    state.publish()
    state.run_until(AFTER)
    assert state.subjects_after(1) == [new[key] for key in ("02b-breathing", *KEYS[2:])]
