"""What silence about a stuck delivery proves, and when (DESIGN.md, invariant 8).

The rule and why it is safe are in nurture.sending.deliveries' docstring; in short, a
stuck delivery (claimed, no event names it) is released only when

- its request is older than max(`delivery.reconcile_after`, the provider's event retry
  window from `facts_for(delivery.provider)`), measured from `submitted_at`, which the
  pass writes before the request goes out (a row from before that column existed falls
  back to its claim time, never later than its request), and
- some email of the same provider submitted after it has been named by an event.

Everything here reads; `deliveries.reconcile` does the releasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from nurture.config import WEBHOOK_KEY_ENV, Config
from nurture.providers.facts import facts_for
from nurture.store import models as m

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
RELEASE_NEXT = "nothing: the next pass sends it again"

SUBMITTED = func.coalesce(m.Delivery.submitted_at, m.Delivery.claimed_at)


def mark_submitted(session: Session, delivery_ids: Sequence[int], provider: str, at: datetime) -> None:
    """Write down to which transport, and when, these claims are handed over (before the request)."""
    session.execute(
        update(m.Delivery)
        .where(m.Delivery.id.in_(list(delivery_ids)), m.Delivery.status == m.DeliveryStatus.CLAIMED)
        .values(provider=provider[:20], submitted_at=at)
    )


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


def evidence_mark(session: Session, provider: str | None) -> datetime | None:
    """The latest request time of an email of `provider` that an event has named (for rows of no
    recorded provider, any email's: they predate the column)."""
    query = select(func.max(SUBMITTED)).join(m.ProviderEvent, m.ProviderEvent.delivery_id == m.Delivery.id)
    if provider is not None:
        query = query.where(m.Delivery.provider == provider)
    value = session.scalar(query)
    return value if isinstance(value, datetime) else None


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

    webhook = bool(config.secrets.webhook_public_key)
    providers = list(session.scalars(select(m.Delivery.provider).where(stuck).distinct()))
    releasable: list[Any] = []
    for provider in providers:
        wait = wait_for(config, provider)
        mine = and_(stuck, _of_provider(provider))
        young = and_(mine, now - wait < SUBMITTED)
        status.waiting += count(young)
        last = session.scalar(select(func.max(SUBMITTED)).where(young))
        if isinstance(last, datetime):
            ends = last + wait
            status.until = ends if status.until is None else max(status.until, ends)
        mark = evidence_mark(session, provider) if webhook else None
        if mark is not None:
            releasable.append(and_(mine, now - wait >= SUBMITTED, mark > SUBMITTED))
    condition = or_(*releasable) if releasable else None
    status.releasable = count(condition) if condition is not None else 0
    status.blocked = status.stuck - status.waiting - status.releasable
    if status.blocked:
        status.reason = SILENT_WEBHOOK if webhook else NO_WEBHOOK
    if not webhook:
        # Without a webhook key nothing settles by itself: every stuck row waits for the owner.
        status.waiting, status.blocked, status.until = 0, status.stuck, None
        status.reason = NO_WEBHOOK
    return status, condition


@dataclass(frozen=True)
class Waiting:
    """What one stuck row waits for, and until when (None: until that happens)."""

    what: str
    until: datetime | None


def explain(
    config: Config,
    now: datetime,
    provider: str | None,
    submitted_at: datetime,
    marks: dict[str | None, datetime | None],
) -> Waiting:
    """`marks`: `evidence_mark` per provider (filled as needed by the caller)."""
    if not config.secrets.webhook_public_key:
        return Waiting(WAITS_FOR_OWNER, None)
    ends = submitted_at + wait_for(config, provider)
    if now < ends:
        return Waiting(WAITS_FOR_WINDOW, ends)
    mark = marks.get(provider)
    if mark is not None and submitted_at < mark:
        return Waiting(RELEASE_NEXT, None)
    return Waiting(WAITS_FOR_LATER, None)


def needs_probe(session: Session, config: Config, now: datetime) -> bool:
    """Whether a stuck row has no email submitted after it whose events could ever vouch for the
    webhook: then only a probe (nurture.sending.probe) can give it one."""
    if not config.secrets.webhook_public_key:
        return False
    stuck = and_(stuck_condition(now), no_event())
    newest_stuck = session.scalar(select(func.max(SUBMITTED)).where(stuck))
    if not isinstance(newest_stuck, datetime):
        return False
    later = session.scalar(
        select(func.count()).select_from(m.Delivery).where(m.Delivery.submitted_at > newest_stuck)
    )
    return not later
