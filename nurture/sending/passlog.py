"""A line in the store for each sending pass, so the console can say when the last one
ran and how it ended (and warn when none has run for a while)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import reading, transaction

KEEP = timedelta(days=7)


def record_pass(
    bind: Engine | Connection,
    started_at: datetime,
    finished_at: datetime,
    *,
    sent: int,
    failed: int,
    stuck: int,
    fatal: str | None,
) -> None:
    outcome = f"stopped: {fatal}" if fatal else "ok"
    with transaction(bind) as session:
        session.add(
            m.SendPassRecord(
                started_at=started_at,
                finished_at=finished_at,
                sent=sent,
                failed=failed,
                stuck=stuck,
                outcome=outcome[:300],
            )
        )
        session.execute(delete(m.SendPassRecord).where(m.SendPassRecord.finished_at < finished_at - KEEP))


def last_pass(app: App) -> m.SendPassRecord | None:
    with reading(app.engine) as session:
        return session.scalar(
            select(m.SendPassRecord)
            .order_by(m.SendPassRecord.finished_at.desc(), m.SendPassRecord.id.desc())
            .limit(1)
        )
