"""Sending held back by an alert until the owner says to go on.

The alerts (nurture.reporting.alerts) place a hold when a rate passes its stop line:
spam complaints stop newsletters; bounces stop every email of the sending pass. The
pass reads the holds when it starts and sends nothing a hold covers; the owner lifts
a hold in the console (Today) once she has looked into it, and the hold row keeps
when and by whom. Confirmation emails and the owner's own notices are not held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.db import reading, transaction


@dataclass(frozen=True)
class Hold:
    id: int
    kind: m.HoldKind
    reason: str
    placed_at: datetime

    @property
    def what(self) -> str:
        return "newsletters" if self.kind == m.HoldKind.NEWSLETTERS else "all sending"


def active_holds(session: Session) -> list[Hold]:
    rows = session.scalars(
        select(m.SendingHold).where(m.SendingHold.lifted_at.is_(None)).order_by(m.SendingHold.id)
    ).all()
    return [Hold(row.id, m.HoldKind(row.kind), row.reason, row.placed_at) for row in rows]


def read_holds(bind: Engine | Connection) -> list[Hold]:
    with reading(bind) as session:
        return active_holds(session)


def holds_newsletters(holds: Sequence[Hold]) -> bool:
    return any(hold.kind in (m.HoldKind.NEWSLETTERS, m.HoldKind.ALL) for hold in holds)


def holds_everything(holds: Sequence[Hold]) -> bool:
    return any(hold.kind == m.HoldKind.ALL for hold in holds)


def place(session: Session, kind: m.HoldKind, reason: str, now: datetime) -> int | None:
    """Hold `kind` for `reason`; None when a hold of that kind is already in place."""
    if any(hold.kind == kind for hold in active_holds(session)):
        return None
    row = m.SendingHold(kind=kind, reason=reason[:500], placed_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None  # another worker placed it at the same moment (one in place per kind)
    return row.id


def last_lifted(session: Session, kind: m.HoldKind) -> datetime | None:
    """When the owner last lifted a hold of `kind`: what came before is what she looked at."""
    return session.scalar(
        select(m.SendingHold.lifted_at)
        .where(m.SendingHold.kind == kind, m.SendingHold.lifted_at.is_not(None))
        .order_by(m.SendingHold.lifted_at.desc())
        .limit(1)
    )


def lift(bind: Engine | Connection, hold_id: int, now: datetime, by: str) -> Hold:
    """The owner says to go on. InputError when no such hold is in place (lifted already)."""
    with transaction(bind) as session:
        row = session.get(m.SendingHold, hold_id)
        if row is None or row.lifted_at is not None:
            raise InputError(f"hold {hold_id} is not in place (it may have been lifted already)")
        row.lifted_at = now
        row.lifted_by = by[:320]
        return Hold(row.id, m.HoldKind(row.kind), row.reason, row.placed_at)
