"""Console sessions, stored server-side so several processes or machines share them.

The cookie carries a random session id; the store keeps only its SHA-256. A session
ends after `console.idle_timeout_minutes` without a request, after
`console.absolute_timeout_hours` in any case, at logout, and when the owner's
password is reset or the account removed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config import Console
from nurture.owners import audit
from nurture.owners.accounts import verify
from nurture.owners.throttle import account_key, is_throttled, record_attempt
from nurture.store import models as m
from nurture.store.db import reading, transaction

# A session's last_seen_at is written at most this often: one write per click is wasted lock time.
TOUCH_EVERY = timedelta(seconds=60)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class OwnerSessionInfo:
    owner_id: int
    email: str
    csrf_token: str

    def actor(self, ip: str | None) -> audit.Actor:
        return audit.Actor(self.email, ip)


@dataclass(frozen=True)
class LoginResult:
    session_id: str | None  # set when the login worked
    throttled: bool = False


def _expired(row: m.OwnerSession, settings: Console, now: datetime) -> bool:
    idle = timedelta(minutes=settings.idle_timeout_minutes)
    absolute = timedelta(hours=settings.absolute_timeout_hours)
    return now - row.last_seen_at >= idle or now - row.created_at >= absolute


def log_in(
    app: App,
    email: str,
    password: str,
    code: str,
    *,
    ip: str,
    now: datetime,
    old_session_id: str | None = None,
) -> LoginResult:
    """Check throttling, then the credentials; on success a brand-new session (any old one ends)."""
    settings = app.config.console
    account = account_key(email)
    with transaction(app.engine) as session:
        if is_throttled(session, account, ip, now):
            return LoginResult(None, throttled=True)
        owner = verify(session, email, password, code, require_totp=settings.require_totp, now=now)
        record_attempt(session, account, ip, now, succeeded=owner is not None)
        if owner is None:
            return LoginResult(None)
        if old_session_id:
            session.execute(delete(m.OwnerSession).where(m.OwnerSession.id_hash == _hash(old_session_id)))
        session_id = secrets.token_urlsafe(32)
        session.add(
            m.OwnerSession(
                id_hash=_hash(session_id),
                owner_id=owner.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                ip=ip[:45],
            )
        )
        audit.record(session, audit.Actor(owner.email, ip), "logged in", now)
        return LoginResult(session_id)


def current(app: App, session_id: str, now: datetime) -> OwnerSessionInfo | None:
    """The live session with this id, or None (an expired one is removed on the way)."""
    if not session_id or len(session_id) > 200:
        return None
    settings, id_hash = app.config.console, _hash(session_id)
    # Most page views change nothing: read without the write lock (on SQLite a write
    # transaction would queue behind, and hold up, a sending pass).
    with reading(app.engine) as session:
        found = session.execute(_lookup(id_hash)).first()
        if found is None:
            return None
        row, email = found
        if not _expired(row, settings, now) and now - row.last_seen_at < TOUCH_EVERY:
            return OwnerSessionInfo(row.owner_id, email, row.csrf_token)
    with transaction(app.engine) as session:
        return _current(session, settings, id_hash, now)


def _lookup(id_hash: str) -> Any:
    return (
        select(m.OwnerSession, m.Owner.email)
        .join(m.Owner, m.Owner.id == m.OwnerSession.owner_id)
        .where(m.OwnerSession.id_hash == id_hash)
    )


def _current(session: Session, settings: Console, id_hash: str, now: datetime) -> OwnerSessionInfo | None:
    found = session.execute(_lookup(id_hash)).first()
    if found is None:
        return None
    row, email = found
    if _expired(row, settings, now):
        session.delete(row)
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return OwnerSessionInfo(row.owner_id, email, row.csrf_token)


def log_out(app: App, session_id: str, *, ip: str | None, now: datetime) -> None:
    with transaction(app.engine) as session:
        id_hash = _hash(session_id)
        info = _current(session, app.config.console, id_hash, now)
        session.execute(delete(m.OwnerSession).where(m.OwnerSession.id_hash == id_hash))
        if info is not None:
            audit.record(session, info.actor(ip), "logged out", now)
