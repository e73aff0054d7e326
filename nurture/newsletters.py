"""Newsletters the owner schedules: stored as approved at scheduling time.

`schedule` renders and lints the file first (any `nurture check` finding refuses
it), then keeps the approved content in the store: later edits of the file do
not change what goes out. The sending pass (`nurture.sending.sendpass`) claims and sends
scheduled newsletters through the same path as the series: exactly once, under
the daily cap, with consent checked at send time.

Two ways to read "--at 2026-12-01 09:00":
- "practice": one instant, that wall-clock time in delivery.default_timezone;
- "subscriber": that wall-clock time in each subscriber's own zone. The row's
  first_due_at is the earliest instant any zone on Earth reaches it (UTC+14), so
  the claim loop starts looking in time; each subscriber is then claimed once
  their own zone reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.addresses import clean_tag, normalize_email
from nurture.app import App
from nurture.content.approved import stored_content
from nurture.content.campaigns import EmailSource, email_from_text, load_email
from nurture.content.checks import check_email
from nurture.content.prepared import PreparedEmail
from nurture.content.preview import newsletter_name
from nurture.content.rules import Finding
from nurture.errors import InputError, NotFound
from nurture.sending.one_email import send_test_copy
from nurture.sending.planning import at_local as local_instant
from nurture.sending.planning import zone
from nurture.store import models as m
from nurture.store.db import is_postgres, reading, transaction

TIMEZONE_MODES: tuple[str, ...] = ("practice", "subscriber")
# The first place on Earth to reach a given wall-clock time (Kiribati, UTC+14).
# POSIX-style names invert the sign: Etc/GMT-14 is UTC+14.
EARLIEST_ZONE = "Etc/GMT-14"
AT_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
NEWSLETTER_LOCK = 7_311_001  # PostgreSQL advisory lock: one scheduling transaction at a time


# ---------------------------------------------------------------- scheduling


def parse_local(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM' -> a naive wall-clock datetime, or InputError."""
    value = (text or "").strip()
    for pattern in AT_FORMATS:
        try:
            return datetime.strptime(value, pattern)
        except ValueError:
            continue
    raise InputError(f"--at {text!r}: use YYYY-MM-DD HH:MM, for example 2026-12-08 10:00")


def _prepare_and_check(
    app: App, path: Path, text: str | None = None
) -> tuple[EmailSource, PreparedEmail, list[Finding]]:
    """The newsletter in the file `path` (or in `text`, as if it were that file), prepared and checked."""
    source = load_email(path) if text is None else email_from_text(path, text)
    prepared = app.renderer.prepare_newsletter(source, newsletter_name(path))
    return source, prepared, check_email(app.config, app.renderer, source, prepared)


def _segment(source: EmailSource) -> str | None:
    if not source.front.segment:
        return None
    try:
        return clean_tag(source.front.segment)
    except InputError as exc:
        raise InputError(f"{source.path}: segment: {exc}") from None


class ChecksFailed(InputError):
    """A `nurture check` rule found a problem in the newsletter."""

    def __init__(self, path: Path, findings: list[Finding]) -> None:
        self.findings = findings
        listed = "\n".join(f"  {finding}" for finding in findings)
        count = len(findings)
        super().__init__(
            f"{path} was not scheduled: {count} problem{'s' if count != 1 else ''} to fix first "
            f"(the same as `nurture check` reports):\n{listed}"
        )


class TooLate(InputError):
    """The time asked for has already passed: in the practice's zone, or where some readers live."""

    def __init__(self, local: datetime, zones: list[str], practice: bool) -> None:
        self.local, self.zones, self.practice = local, zones, practice
        if practice:
            message = (
                f"--at {local:%Y-%m-%d %H:%M} has already passed in "
                f"{zones[0]} (the practice's zone): pick a later time"
            )
        else:
            message = (
                f"--at {local:%Y-%m-%d %H:%M} has already passed for subscribers in {', '.join(zones)}: "
                "pick a later time, or use --timezone practice to send at one instant"
            )
        super().__init__(message)


class SameContent(InputError):
    """Another newsletter, scheduled or sent, has exactly this content: everyone would get it twice."""

    def __init__(self, path: Path, existing: m.Newsletter) -> None:
        self.existing_id, self.existing_status = existing.id, existing.status
        self.existing_when = existing.send_at_local.replace("T", " ")[:16]
        super().__init__(
            f"{path} was not scheduled: newsletter {existing.id} "
            f"({existing.status}, {self.existing_when}) "
            "has the same content, so everyone would get it twice. "
            "To send it again anyway, add --again; to change the time, "
            f"cancel it first: nurture newsletter cancel {existing.id}"
        )


class NameTaken(InputError):
    """Another newsletter keeps its file under this name (the console never overwrites one)."""

    def __init__(self, path: Path, owner_id: int | None) -> None:
        self.owner_id = owner_id
        whose = f"newsletter {owner_id}" if owner_id is not None else "another file"
        super().__init__(f"{path.name} is already used by {whose}: choose another name")


class NotScheduledAnyMore(InputError):
    """The newsletter to replace or move has started going out, or was cancelled, meanwhile."""

    def __init__(self, newsletter_id: int, status: str | None) -> None:
        self.newsletter_id, self.status = newsletter_id, status
        state = "no longer exists" if status is None else f"is {status} now"
        super().__init__(f"newsletter {newsletter_id} {state}: only a scheduled newsletter can be changed")


def _one_at_a_time(session: Session) -> None:
    """Hold the newsletters for this transaction, so that two scheduling at once see each other.
    SQLite's write transactions already take the one write lock (BEGIN IMMEDIATE)."""
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock(NEWSLETTER_LOCK)))


def _same_content(session: Session, content: dict[str, Any], but: int | None) -> m.Newsletter | None:
    query = (
        select(m.Newsletter)
        .where(
            m.Newsletter.status.in_(
                [m.NewsletterStatus.SCHEDULED, m.NewsletterStatus.SENDING, m.NewsletterStatus.SENT]
            )
        )
        .order_by(m.Newsletter.id)
    )
    for newsletter in session.scalars(query):
        if newsletter.id == but:
            continue
        if (
            newsletter.content.get("front") == content["front"]
            and newsletter.content.get("body") == content["body"]
        ):
            return newsletter
    return None


def same_content_as(app: App, source: EmailSource) -> m.Newsletter | None:
    """A scheduled, sending or sent newsletter with exactly this subject, front matter and text, if any."""
    with reading(app.engine) as session:
        return _same_content(session, stored_content(source), None)


def first_due_at(app: App, local: datetime, timezone_mode: str, now: datetime) -> datetime:
    """The first instant the newsletter may go out; TooLate if `local` has passed where it counts."""
    practice_zone = app.config.delivery.default_timezone
    if timezone_mode == "practice":
        first_due = local_instant(local.date(), local.time(), zone(practice_zone))
        if first_due <= now:
            raise TooLate(local, [practice_zone], practice=True)
        return first_due
    passed = _zones_already_past(app, local, now)
    if passed:
        raise TooLate(local, passed, practice=False)
    return local_instant(local.date(), local.time(), zone(EARLIEST_ZONE))


def _check_mode(timezone_mode: str) -> None:
    if timezone_mode not in TIMEZONE_MODES:
        raise InputError(
            f"--timezone {timezone_mode!r}: use 'practice' (one "
            "instant) or 'subscriber' (each person's local time)"
        )


def schedule(
    app: App,
    path: Path,
    at_local: str,
    timezone_mode: str,
    now: datetime,
    *,
    again: bool = False,
    text: str | None = None,
    replaces: int | None = None,
    new_file: bool = False,
) -> int:
    """Render and lint the newsletter, then store it as scheduled. Returns its id.

    Refused (InputError) when any `nurture check` rule finds a problem, when the
    time is not YYYY-MM-DD HH:MM, when it has already passed (in practice mode:
    in the practice's zone; in subscriber mode: in any zone where a subscriber lives),
    or when a newsletter with the same content is already scheduled or sent, unless
    `again` (a newsletter is a new stream: everyone would get it a second time).

    The console's options: `text` is the newsletter as typed, scheduled as the file `path`
    it is then written to; `replaces` is a scheduled newsletter this one
    takes the place of, in the same transaction; `new_file` refuses a `path` that another
    newsletter, not cancelled, already names. The checks that depend on other newsletters
    run inside the transaction that stores it, so of two scheduling at once one is refused.
    """
    _check_mode(timezone_mode)
    local = parse_local(at_local)
    path = Path(path)
    source, prepared, findings = _prepare_and_check(app, path, text)
    if findings:
        raise ChecksFailed(path, findings)
    segment = _segment(source)
    first_due = first_due_at(app, local, timezone_mode, now)
    content = stored_content(source)
    with transaction(app.engine) as session:
        _one_at_a_time(session)
        replaced = session.get(m.Newsletter, replaces) if replaces is not None else None
        if replaces is not None and (replaced is None or replaced.status != m.NewsletterStatus.SCHEDULED):
            raise NotScheduledAnyMore(replaces, replaced.status if replaced is not None else None)
        if new_file:
            holder = session.scalar(
                select(m.Newsletter.id).where(
                    m.Newsletter.source_file == str(path),
                    m.Newsletter.status != m.NewsletterStatus.CANCELLED,
                    m.Newsletter.id != (replaces or 0),
                )
            )
            if holder is not None:
                raise NameTaken(path, holder)
        if not again:
            existing = _same_content(session, content, replaces)
            if existing is not None:
                raise SameContent(path, existing)
        if replaced is not None:
            replaced.status = m.NewsletterStatus.CANCELLED
            replaced.updated_at = now
        newsletter = m.Newsletter(
            source_file=str(path),
            subject=prepared.subject[:200],
            content=content,
            segment_tag=segment,
            send_at_local=local.strftime("%Y-%m-%dT%H:%M:%S"),
            timezone_mode=timezone_mode,
            first_due_at=first_due,
            status=m.NewsletterStatus.SCHEDULED,
            created_at=now,
            updated_at=now,
        )
        session.add(newsletter)
        session.flush()
        return newsletter.id


def reschedule(app: App, newsletter_id: int, at_local: str, timezone_mode: str, now: datetime) -> None:
    """Move a scheduled newsletter to another time (or reading of it); its content stays as approved."""
    _check_mode(timezone_mode)
    local = parse_local(at_local)
    first_due = first_due_at(app, local, timezone_mode, now)
    with transaction(app.engine) as session:
        _one_at_a_time(session)
        newsletter = session.get(m.Newsletter, newsletter_id)
        if newsletter is None or newsletter.status != m.NewsletterStatus.SCHEDULED:
            raise NotScheduledAnyMore(newsletter_id, newsletter.status if newsletter is not None else None)
        newsletter.send_at_local = local.strftime("%Y-%m-%dT%H:%M:%S")
        newsletter.timezone_mode = timezone_mode
        newsletter.first_due_at = first_due
        newsletter.updated_at = now


def _zones_already_past(app: App, local: datetime, now: datetime) -> list[str]:
    """The zones of active subscribers (and the default zone) where `local` is not in the future."""
    with reading(app.engine) as session:
        zones = set(
            session.scalars(
                select(m.Subscriber.timezone)
                .where(m.Subscriber.status.in_([m.SubscriberStatus.ACTIVE, m.SubscriberStatus.PENDING]))
                .distinct()
            )
        )
    names = {name or app.config.delivery.default_timezone for name in zones} | {
        app.config.delivery.default_timezone
    }
    return sorted(name for name in names if local_instant(local.date(), local.time(), zone(name)) <= now)


# ---------------------------------------------------------------- listing and cancelling


@dataclass(frozen=True)
class NewsletterInfo:
    id: int
    subject: str
    source_file: str
    status: str
    timezone_mode: str
    send_at_local: str  # wall-clock "YYYY-MM-DD HH:MM"
    first_due_at: datetime
    segment_tag: str | None
    # Deliveries by status: claimed = in flight or stuck (outcome unknown).
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def when(self) -> str:
        where = "in each person's zone" if self.timezone_mode == "subscriber" else "practice time"
        return f"{self.send_at_local} {where}"


def list_newsletters(app: App, *, statuses: tuple[str, ...] | None = None) -> list[NewsletterInfo]:
    """Every newsletter, newest first, with delivery counts (two queries)."""
    with transaction(app.engine) as session:
        query = select(m.Newsletter).order_by(m.Newsletter.first_due_at.desc(), m.Newsletter.id.desc())
        if statuses:
            query = query.where(m.Newsletter.status.in_(list(statuses)))
        newsletters = session.scalars(query).all()
        counts: dict[int, dict[str, int]] = {}
        rows = session.execute(
            select(m.Delivery.newsletter_id, m.Delivery.status, func.count())
            .where(m.Delivery.newsletter_id.is_not(None))
            .group_by(m.Delivery.newsletter_id, m.Delivery.status)
        )
        for newsletter_id, status, count in rows:
            assert newsletter_id is not None  # the query keeps only rows with a newsletter_id
            counts.setdefault(newsletter_id, {})[status] = int(count)
        result = []
        for row in newsletters:
            by_status = counts.get(row.id, {})
            result.append(
                NewsletterInfo(
                    id=row.id,
                    subject=row.subject,
                    source_file=row.source_file,
                    status=row.status,
                    timezone_mode=row.timezone_mode,
                    send_at_local=row.send_at_local.replace("T", " ")[:16],
                    first_due_at=row.first_due_at,
                    segment_tag=row.segment_tag,
                    claimed=by_status.get(m.DeliveryStatus.CLAIMED, 0),
                    sent=by_status.get(m.DeliveryStatus.SENT, 0),
                    failed=by_status.get(m.DeliveryStatus.FAILED, 0),
                    skipped=by_status.get(m.DeliveryStatus.SKIPPED, 0),
                )
            )
        return result


def cancel(app: App, newsletter_id: int, now: datetime) -> str:
    """Stop a newsletter. Returns the status it had ("scheduled" or "sending").

    A scheduled one never goes out; one that is sending claims nobody new (the
    claim query only picks scheduled and sending newsletters), and what a running
    pass claimed before the cancel is skipped at its last check before sending. Only
    requests already handed to the provider still go out.
    """
    with transaction(app.engine) as session:
        newsletter = session.get(m.Newsletter, newsletter_id)
        if newsletter is None:
            raise NotFound(f"newsletter {newsletter_id} does not exist (see: nurture newsletter list)")
        previous = newsletter.status
        if previous == m.NewsletterStatus.CANCELLED:
            raise InputError(f"newsletter {newsletter_id} is already cancelled: nothing changed")
        if previous == m.NewsletterStatus.SENT:
            raise InputError(
                f"newsletter {newsletter_id} has already been "
                "sent to everyone: there is nothing left to cancel"
            )
        newsletter.status = m.NewsletterStatus.CANCELLED
        newsletter.updated_at = now
        return previous


# ---------------------------------------------------------------- a test copy


@dataclass(frozen=True)
class SentTestCopy:
    to: str
    subject: str
    provider_message_id: str | None
    findings: list[Finding]


def send_test(app: App, path: Path, to_address: str) -> SentTestCopy:
    """Send one copy of a newsletter file to `to_address`, subject prefixed "[TEST] ".

    Not recorded as a delivery and not counted in stats. Its unsubscribe link is a
    sample one (subscriber 0) that unsubscribes nobody. Lint findings do not stop a
    test copy (seeing the problem may help); they are returned for the caller to show.
    """
    normalize_email(to_address)  # a mistyped address is refused before anything is rendered
    _, prepared, findings = _prepare_and_check(app, Path(path))
    sent = send_test_copy(app.transport, app.config, prepared, to_address)
    return SentTestCopy(sent.to, sent.subject, sent.provider_message_id, findings)
