"""What silence about a stuck delivery proves, and when (DESIGN.md, invariant 8).

The rule and why it is safe are in nurture.sending.deliveries' docstring; in short, a
stuck delivery (claimed, no event names it) is released only when

- it was never handed to a transport (a message key, no `submitted_at`) and was
  claimed longer than `delivery.reconcile_after` ago; or
- its request is older than max(`delivery.reconcile_after`, the provider's event retry
  window from `facts_for(delivery.provider)`), measured from `submitted_at`, which the
  pass writes before the request goes out, and an event arrived within that window for
  an email of the same provider submitted after it (`vouched`).

A row claimed before these columns existed has no provider and no `submitted_at`: its
claim time stands for its request (a little earlier), and an unknown provider's
careful window (72 h) covers the difference.

Everything here reads; `deliveries.reconcile` does the releasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from nurture.config import WEBHOOK_KEY_ENV, Config
from nurture.providers.facts import facts_for
from nurture.store import models as m
from nurture.store.statements import IdStatements, statements_for

STUCK_AFTER = timedelta(minutes=10)
NO_WEBHOOK = (
    f"{WEBHOOK_KEY_ENV} is not set, so no SendGrid event can say what went out; check each one in "
    "SendGrid's activity feed, then release it (nurture deliveries release)"
)
SILENT_WEBHOOK = (
    "no SendGrid event has arrived for any email sent after them, so silence proves nothing yet; "
    "check the Event Webhook in SendGrid's settings and that nurture serve is reachable"
)
# What each stuck row waits for (the console's deliveries page, `nurture deliveries --stuck`).
WAITS_FOR_WINDOW = "provider events (the provider may still be retrying them)"
WAITS_FOR_LATER = "an event for a later email (a probe to the practice's address gives one)"
WAITS_FOR_OWNER = "the owner: no webhook key, nothing can settle it by itself"
WAITS_FOR_OUTAGE = (
    "the owner: no event came for any later email while the provider could still report this one "
    "(a webhook outage longer than its retry window); check the provider's activity feed"
)
NEVER_SENT = "its worker: it was never handed to the provider, and is released after reconcile_after"
RELEASE_NEXT = "nothing: the next pass sends it again"

SUBMITTED = func.coalesce(m.Delivery.submitted_at, m.Delivery.claimed_at)


def _submitted_statement(statements: IdStatements) -> Any:
    return (
        update(m.Delivery)
        .where(
            statements.in_ids(m.Delivery.id),
            statements.unindexed(m.Delivery.status) == m.DeliveryStatus.CLAIMED,
        )
        .values(
            provider=bindparam("provider"), submitted_at=bindparam("at", type_=m.Delivery.submitted_at.type)
        )
    )


def mark_submitted(session: Session, delivery_ids: Sequence[int], provider: str, at: datetime) -> int:
    """Write down to which transport, and when, these claims are handed over (before the request);
    how many rows were marked (fewer: some claim is no longer this pass's to send)."""
    connection = session.connection()
    statements = statements_for(connection)
    statement = statements.built("mark submitted", _submitted_statement)
    marked = 0
    for chunk in statements.id_chunks(delivery_ids):  # one chunk for a batch: a thousand ids
        result = connection.execute(statement, {"ids": chunk, "provider": provider[:20], "at": at})
        marked += int(result.rowcount or 0)
    return marked


def stuck_condition(now: datetime, older_than: timedelta = STUCK_AFTER) -> Any:
    return and_(
        m.Delivery.status == m.DeliveryStatus.CLAIMED,
        or_(m.Delivery.claimed_at <= now - older_than, m.Delivery.error.is_not(None)),
    )


def no_event() -> Any:
    return ~exists().where(m.ProviderEvent.delivery_id == m.Delivery.id)


def wait_for(config: Config, provider: str | None) -> timedelta:
    """How long after its request silence about an email of `provider` proves nothing."""
    return max(config.delivery.reconcile_after, facts_for(provider).event_retry_window)


def _of_provider(provider: str | None) -> Any:
    return m.Delivery.provider == provider if provider is not None else m.Delivery.provider.is_(None)


# Claimed since message keys exist, and never marked as handed to a transport: the mark is
# committed before every request, so such an email never left. It is released once its
# worker surely has no use for it: `reconcile_after` (15 minutes at least) after the claim,
# while a worker holds an unsent claim for two batches' wait at most.
NEVER_HANDED = and_(m.Delivery.message_key.is_not(None), m.Delivery.submitted_at.is_(None))
HANDED = ~NEVER_HANDED


def vouched(session: Session, provider: str | None, submitted: datetime, window: timedelta) -> bool:
    """Whether an event arrived, within `window` after `submitted`, for an email of `provider`
    submitted after that moment: the webhook was working while the provider could still
    post this one's events (for rows of no recorded provider, any email counts)."""
    query = (
        select(m.ProviderEvent.id)
        .join(m.Delivery, m.Delivery.id == m.ProviderEvent.delivery_id)
        .where(submitted < SUBMITTED, m.ProviderEvent.received_at <= submitted + window)
        .limit(1)
    )
    if provider is not None:
        query = query.where(m.Delivery.provider == provider)
    return session.execute(query).first() is not None


@dataclass
class ReconcileStatus:
    """Where the stuck deliveries stand; the console and the pass's summary show it."""

    stuck: int = 0  # claimed, outcome unknown (see `stuck_condition`)
    waiting: int = 0  # of those, within the provider's retry window (or reconcile_after): events may come
    releasable: int = 0  # past it, and a later email's events arrived: sent again by the next pass
    blocked: int = 0  # past it with no later evidence (or no webhook key); `reason` says why
    reason: str | None = None
    oldest_claimed_at: datetime | None = None
    until: datetime | None = None  # when the last of the waiting ones stops waiting for its events

    def line(self) -> str:
        if not self.stuck:
            return "no stuck deliveries"
        text = f"{self.stuck} stuck"
        if self.waiting:
            text += f", {self.waiting} waiting for provider events"
            if self.until is not None:
                text += f" until {self.until:%Y-%m-%d %H:%M} UTC"
        if self.releasable:
            text += f", {self.releasable} to send again (no provider record)"
        if self.blocked:
            text += f", {self.blocked} not released automatically: {self.reason}"
        return text


def assess(session: Session, config: Config, now: datetime) -> tuple[ReconcileStatus, Any]:
    """The status, and the condition picking the deliveries that may be released now (or None)."""
    status = ReconcileStatus()
    stuck = and_(stuck_condition(now), no_event())
    status.stuck, status.oldest_claimed_at = session.execute(
        select(func.count(), func.min(m.Delivery.claimed_at)).select_from(m.Delivery).where(stuck)
    ).one()
    if not status.stuck:
        return status, None  # the usual case: one indexed count per pass

    def count(condition: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(m.Delivery).where(condition)) or 0)

    def later(value: Any, wait: timedelta) -> None:
        if isinstance(value, datetime):
            status.until = value + wait if status.until is None else max(status.until, value + wait)

    minimum = config.delivery.reconcile_after
    never_handed = and_(stuck, NEVER_HANDED)
    status.waiting += count(and_(never_handed, m.Delivery.claimed_at > now - minimum))
    later(session.scalar(select(func.max(m.Delivery.claimed_at)).where(never_handed)), minimum)
    released: list[Any] = [and_(never_handed, m.Delivery.claimed_at <= now - minimum)]

    webhook = bool(config.secrets.webhook_public_key)
    handed = and_(stuck, HANDED)
    vouched_ids: list[int] = []
    for provider in list(session.scalars(select(m.Delivery.provider).where(handed).distinct())):
        if not webhook:
            break  # no event can come: every handed row waits for the owner (blocked)
        wait = wait_for(config, provider)
        mine = and_(handed, _of_provider(provider))
        young = and_(mine, now - wait < SUBMITTED)
        status.waiting += count(young)
        later(session.scalar(select(func.max(SUBMITTED)).where(young)), wait)
        # Past the window: one look per request moment (a batch shares one), few in all.
        past = session.execute(
            select(m.Delivery.id, SUBMITTED.label("at")).where(mine, now - wait >= SUBMITTED)
        )
        by_moment: dict[datetime, list[int]] = {}
        for row in past:
            by_moment.setdefault(row.at, []).append(row.id)
        for moment, ids in by_moment.items():
            if vouched(session, provider, moment, wait):
                vouched_ids += ids
    if vouched_ids:
        released.append(m.Delivery.id.in_(vouched_ids))
    condition = or_(*released)
    status.releasable = count(and_(stuck, condition))
    status.blocked = status.stuck - status.waiting - status.releasable
    if status.blocked:
        status.reason = SILENT_WEBHOOK if webhook else NO_WEBHOOK
    return status, and_(stuck, condition)


@dataclass(frozen=True)
class Waiting:
    """What one stuck row waits for, and until when (None: until that happens)."""

    what: str
    until: datetime | None


def explain(
    session: Session,
    config: Config,
    now: datetime,
    row: Any,
) -> Waiting:
    """What a stuck row (`provider`, `submitted_at`, `claimed_at`, `message_key`) waits for."""
    if row.message_key is not None and row.submitted_at is None:
        ends = row.claimed_at + config.delivery.reconcile_after
        return Waiting(NEVER_SENT if now < ends else RELEASE_NEXT, ends if now < ends else None)
    submitted = row.submitted_at or row.claimed_at
    wait = wait_for(config, row.provider)
    if now < submitted + wait:
        return Waiting(WAITS_FOR_WINDOW, submitted + wait)
    if not config.secrets.webhook_public_key:
        return Waiting(WAITS_FOR_OWNER, None)
    if vouched(session, row.provider, submitted, wait):
        return Waiting(RELEASE_NEXT, None)
    return Waiting(WAITS_FOR_OUTAGE, None)


def needs_probe(session: Session, config: Config, now: datetime) -> bool:
    """Whether a stuck row has no email submitted after it whose events could ever vouch for the
    webhook: then only a probe (nurture.sending.probe) can give it one."""
    if not config.secrets.webhook_public_key:
        return False
    stuck = and_(stuck_condition(now), no_event())
    newest_stuck = session.scalar(select(func.max(SUBMITTED)).where(stuck))
    if not isinstance(newest_stuck, datetime):
        return False
    # A failed email (refused, or a probe that timed out) brings no event to wait for: it
    # does not count, or one failed probe would stop every later one.
    later = session.scalar(
        select(func.count())
        .select_from(m.Delivery)
        .where(m.Delivery.submitted_at > newest_stuck, m.Delivery.status != m.DeliveryStatus.FAILED)
    )
    return not later
