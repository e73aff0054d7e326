"""What publishing a new version of a series means for the people in it, worked out without changing anything.

The rule for people mid-series (the default):
  everyone still in the series receives every step of the published version they
  have not had yet, in the version's order, each one that step's delay after
  *their* previous email of the series. A removed step is never sent again; an
  edited step (same key) is not sent again to those who had it. People who had
  finished the series and are still subscribed receive the steps that are new to
  them the same way.
With `only_ahead`, people already past an added step (they have had a step that
comes after it) skip it, as Kit and MailerLite do; the skip is stored as a
"skipped" delivery of that key, so it stays skipped whatever is published later.

`plan()` works this out (`nurture campaign diff`); `nurture.series.publish` stores
the version and carries the plan out, in one transaction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.series.catalog import SeriesStore, latest_numbers, stored_version
from nurture.series.versions import SeriesDiff, Snapshot, StepChange, diff_snapshots, snapshot_of
from nurture.store import models as m
from nurture.store.db import is_postgres, reading

RULE = (
    "Rule for people mid-series: everyone still in the series receives each step of the new version "
    "they have not had, in the new order, each that step's delay after their previous email of the series; "
    "removed steps are never sent; an edited step is not sent again to those who had it."
)
ONLY_AHEAD_RULE = "With --only-ahead: people already past an added step skip it (it is recorded as skipped)."
FINISHED = "nothing (finished the series)"


@dataclass
class Member:
    """One enrollment of the series as the plan reads it: where the person is, and what they have had."""

    enrollment_id: int
    subscriber_id: int
    status: str  # the enrollment's
    subscribed: bool
    next_key: str | None
    next_due_at: datetime | None
    enrolled_at: datetime
    received: set[str] = field(default_factory=set)
    last_sent_at: datetime | None = None

    @property
    def in_series(self) -> bool:
        """Still in the series: active, or finished and still subscribed (new steps reach them)."""
        return self.status == m.EnrollmentStatus.ACTIVE or (
            self.status == m.EnrollmentStatus.COMPLETED and self.subscribed
        )


@dataclass(frozen=True)
class Move:
    """Where one enrollment goes under the new version."""

    person: Member
    next_key: str | None
    skips: tuple[str, ...]  # added keys skipped under --only-ahead


@dataclass(frozen=True)
class Impact:
    change: StepChange
    affected: int  # people in the series who have not had this step
    groups: tuple[str, ...]  # what each group of them gets, in words


@dataclass
class PublishPlan:
    slug: str
    old_version: int | None
    new_version: int
    diff: SeriesDiff
    snapshot: Snapshot
    only_ahead: bool
    people: int = 0  # in the series (active, or finished and still subscribed)
    impacts: list[Impact] = field(default_factory=list)
    next_moves: list[tuple[int, str, str]] = field(default_factory=list)  # (people, next before, next after)
    skipped: int = 0  # (person, step) pairs skipped under --only-ahead
    moves: list[Move] = field(default_factory=list, repr=False)

    def lines(self) -> list[str]:
        if self.old_version is None:
            head = [f"{self.slug}: version 1 ({len(self.snapshot['steps'])} steps), nothing published before"]
            return head + [
                f"  {change.new_position}. {change.subject}  [{change.key}]  {change.detail}"
                for change in self.diff.changes
            ]
        if self.diff.empty:
            return [f"{self.slug}: the files match version {self.old_version}; nothing to publish"]
        out = [
            f"{self.slug}: version {self.old_version} -> "
            f"{self.new_version}; {self.people} people in the series"
        ]
        out += [f"  setting {line}" for line in self.diff.settings]
        for impact in self.impacts:
            change = impact.change
            out.append(f"  {change.kind:<8} {change.subject!r} [{change.key}]: {change.detail}")
            out += [f"           {group}" for group in impact.groups]
        if self.next_moves:
            out.append("  what each group receives next:")
            out += [f"    {count} people: {before} -> {after}" for count, before, after in self.next_moves]
        else:
            out.append("  nobody's next email changes")
        out.append(RULE)
        if self.only_ahead:
            out.append(f"{ONLY_AHEAD_RULE} {self.skipped} skip(s).")
        return out


# ---------------------------------------------------------------- reading


def _people(session: Session, slug: str, *, lock: bool) -> list[Member]:
    enrollment = m.Enrollment
    query = (
        select(
            enrollment.id,
            enrollment.subscriber_id,
            enrollment.status,
            m.Subscriber.status,
            enrollment.next_step_key,
            enrollment.next_due_at,
            enrollment.enrolled_at,
        )
        .join(m.Subscriber, m.Subscriber.id == enrollment.subscriber_id)
        .where(enrollment.campaign == slug)
        .order_by(enrollment.id)
    )
    if lock and is_postgres(session):
        # A pass claiming now holds some of these rows: wait for it, so its claims are seen below.
        query = query.with_for_update(of=enrollment)
    people = {
        row[1]: Member(row[0], row[1], row[2], row[3] == m.SubscriberStatus.ACTIVE, row[4], row[5], row[6])
        for row in session.execute(query)
    }
    deliveries = select(
        m.Delivery.subscriber_id, m.Delivery.step_key, m.Delivery.status, m.Delivery.claimed_at
    ).where(m.Delivery.stream == slug, m.Delivery.subscriber_id.is_not(None))
    for subscriber_id, key, status, claimed_at in session.execute(deliveries):
        person = people.get(subscriber_id) if subscriber_id is not None else None
        if person is None:
            continue
        person.received.add(key)
        if status != m.DeliveryStatus.SKIPPED and (
            person.last_sent_at is None or claimed_at > person.last_sent_at
        ):
            person.last_sent_at = claimed_at
    return list(people.values())


# ---------------------------------------------------------------- the plan


def _label(snapshot: Snapshot | None, key: str | None) -> str:
    if key is None:
        return FINISHED
    item = next((item for item in (snapshot or {}).get("steps", []) if item["key"] == key), None)
    return f"{item['content']['front']['subject']!r} [{key}]" if item else f"[{key}]"


def _moves(people: list[Member], new: Snapshot, added: set[str], only_ahead: bool) -> list[Move]:
    order = [item["key"] for item in new["steps"]]
    moves = []
    for person in people:
        skips: tuple[str, ...] = ()
        if only_ahead:
            skips = tuple(
                key
                for index, key in enumerate(order)
                if key in added
                and key not in person.received
                and any(later in person.received for later in order[index + 1 :])
            )
        had = person.received | set(skips)
        moves.append(Move(person, next((key for key in order if key not in had), None), skips))
    return moves


def _impacts(diff: SeriesDiff, moves: list[Move], only_ahead: bool) -> list[Impact]:
    in_series = [move for move in moves if move.person.in_series]
    impacts = []
    for change in diff.changes:
        lacking = [move for move in in_series if change.key not in move.person.received]
        had = len(in_series) - len(lacking)
        groups: list[str] = []
        if change.kind == "added":
            skipping = sum(1 for move in lacking if change.key in move.skips)
            next_up = sum(1 for move in lacking if move.next_key == change.key)
            groups.append(f"{len(lacking) - skipping} people get it ({next_up} of them as their next email)")
            if only_ahead:
                groups.append(f"{skipping} people already past it skip it")
        elif change.kind == "removed":
            groups.append(f"{len(lacking)} people who have not had it will never get it; {had} had it")
        elif change.kind == "moved":
            groups.append(
                f"{len(lacking)} people who have not had it get it at "
                f"its new place; {had} had it and do not get it again"
            )
        elif change.kind == "edited":
            groups.append(
                f"{len(lacking)} people who have not had it get the "
                f"new version; {had} had it and do not get it again"
            )
        elif change.kind == "renamed":
            groups.append("the same email for everyone: nobody gets it twice")
        elif change.kind == "delay":
            groups.append(
                f"{len(lacking)} people who have not had it wait the new delay after their previous email"
            )
        impacts.append(Impact(change, len(lacking), tuple(groups)))
    return impacts


def plan_in(session: Session, draft: Campaign, *, only_ahead: bool, lock: bool) -> PublishPlan:
    """The plan against the rows as `session` sees them; `lock` holds the enrollments for a publish."""
    slug = draft.slug
    new = snapshot_of(draft)
    old_version = latest_numbers(session).get(slug)
    old = stored_version(session, slug, old_version) if old_version is not None else None
    diff = diff_snapshots(slug, old_version, old, new)
    plan = PublishPlan(slug, old_version, (old_version or 0) + 1, diff, new, only_ahead)
    if old is None or diff.empty:
        return plan
    people = _people(session, slug, lock=lock)
    added = {change.key for change in diff.of_kind("added")}
    plan.moves = _moves(people, new, added, only_ahead)
    plan.people = sum(1 for person in people if person.in_series)
    plan.impacts = _impacts(diff, plan.moves, only_ahead)
    plan.skipped = sum(len(move.skips) for move in plan.moves if move.person.in_series)
    changed: Counter[tuple[str, str]] = Counter()
    for move in plan.moves:
        person = move.person
        if not person.in_series:
            continue
        before = _label(old, person.next_key if person.status == m.EnrollmentStatus.ACTIVE else None)
        after = _label(new, move.next_key)
        if before != after:
            changed[(before, after)] += 1
    plan.next_moves = [(count, before, after) for (before, after), count in changed.most_common()]
    return plan


def plan(app: SeriesStore, draft: Campaign, *, only_ahead: bool = False) -> PublishPlan:
    """What publishing `draft` would change, and for whom; nothing is written."""
    with reading(app.engine) as session:
        return plan_in(session, draft, only_ahead=only_ahead, lock=False)
