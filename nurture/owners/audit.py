"""The owner audit log: who did what, when, from where. Append-only in the store.

Subscribers are named by id, never by address or name: forgetting a person must
leave nothing of them here, and this table cannot be edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import reading, transaction


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where."""

    email: str
    ip: str | None


def record(session: Session, actor: Actor, action: str, now: datetime, detail: str | None = None) -> None:
    session.add(
        m.OwnerAuditEntry(
            at=now,
            owner=actor.email,
            action=action[:60],
            detail=detail[:400] if detail else None,
            ip=actor.ip,
        )
    )


def record_now(app: App, actor: Actor, action: str, now: datetime, detail: str | None = None) -> None:
    with transaction(app.engine) as session:
        record(session, actor, action, now, detail)


@dataclass(frozen=True)
class AuditPage:
    entries: list[m.OwnerAuditEntry]
    total: int


def read_audit(app: App, *, offset: int = 0, limit: int = 100) -> AuditPage:
    with reading(app.engine) as session:
        total = int(session.scalar(select(func.count()).select_from(m.OwnerAuditEntry)) or 0)
        rows = session.scalars(
            select(m.OwnerAuditEntry).order_by(m.OwnerAuditEntry.id.desc()).offset(offset).limit(limit)
        ).all()
        return AuditPage(list(rows), total)
