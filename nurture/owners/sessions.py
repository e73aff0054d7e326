"""Console sessions, stored server-side so several processes or machines share them.

The cookie carries a random session id; the store keeps only its SHA-256 (the
session's "handle", which the account page uses to name one). A session ends after
`console.idle_timeout_minutes` without a request, after `console.absolute_timeout_hours`
in any case, at logout, when the owner ends it from her account page, when her password
is changed (every other session) or reset (all of them), and when the account is removed.
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
from nurture.errors import InputError
from nurture.owners import audit
from nurture.owners.accounts import find_owner, password_matches, set_password
from nurture.owners.codeapp import Factor, check_code, looks_like_recovery_code
from nurture.owners.throttle import account_key, network_of, record_attempt, throttle_state
from nurture.store import models as m
from nurture.store.db import reading, transaction

# A session's last_seen_at is written at most this often: one write per click is wasted lock time.
TOUCH_EVERY = timedelta(seconds=60)


def session_handle(session_id: str) -> str:
    """What the store keeps of a session id: its SHA-256."""
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
    used_recovery_code: bool = False


def _expired(row: m.OwnerSession, settings: Console, now: datetime) -> bool:
    idle = timedelta(minutes=settings.idle_timeout_minutes)
    absolute = timedelta(hours=settings.absolute_timeout_hours)
    return now - row.last_seen_at >= idle or now - row.created_at >= absolute


def _check(
    session: Session, app: App, email: str, password: str, code: str, now: datetime, *, codes_locked: bool
) -> tuple[m.Owner | None, m.LoginOutcome, Factor | None]:
    """The owner when address, password and (if set up or required) code match; what to count."""
    owner = find_owner(session, email)
    if not password_matches(owner, password) or owner is None:
        return None, m.LoginOutcome.FAILED, None
    if owner.totp_sealed is None:
        if app.config.console.require_totp:
            return None, m.LoginOutcome.FAILED, None
        return owner, m.LoginOutcome.SIGNED_IN, None
    factor = check_code(session, app.config, owner, code, now, codes_locked=codes_locked)
    if factor in (Factor.PASSED, Factor.PASSED_WITH_RECOVERY):
        return owner, m.LoginOutcome.SIGNED_IN, factor
    return None, (m.LoginOutcome.WRONG_CODE if factor is Factor.WRONG else m.LoginOutcome.FAILED), factor


def log_in(
    app: App,
    email: str,
    password: str,
    code: str,
    *,
    ip: str,
    now: datetime,
    old_session_id: str | None = None,
    user_agent: str | None = None,
) -> LoginResult:
    """Check throttling, then the credentials; on success a brand-new session (any old one ends)."""
    account, network = account_key(email), network_of(ip)
    with transaction(app.engine) as session:
        throttle = throttle_state(session, account, network, now)
        # Refusals are not in the audit log: they cost an attacker nothing, and that log is never pruned.
        if throttle.refused:
            return LoginResult(None, throttled=True)
        if throttle.codes_locked and not looks_like_recovery_code(code):
            # Refused before the password is checked: the answer must not tell whether it was right.
            return LoginResult(None, throttled=True)
        owner, outcome, factor = _check(
            session, app, email, password, code, now, codes_locked=throttle.codes_locked
        )
        record_attempt(session, account, network, now, outcome)
        if owner is None:
            _audit_failure(session, email, ip, now)
            return LoginResult(None)
        if old_session_id:
            session.execute(
                delete(m.OwnerSession).where(m.OwnerSession.id_hash == session_handle(old_session_id))
            )
        session_id = secrets.token_urlsafe(32)
        session.add(
            m.OwnerSession(
                id_hash=session_handle(session_id),
                owner_id=owner.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                ip=ip[:45],
                user_agent=(user_agent or "")[:200] or None,
            )
        )
        recovery = factor is Factor.PASSED_WITH_RECOVERY
        audit.record(
            session,
            audit.Actor(owner.email, ip),
            "logged in",
            now,
            "with a recovery code" if recovery else None,
        )
        return LoginResult(session_id, used_recovery_code=recovery)


def _audit_failure(session: Session, email: str, ip: str, now: datetime) -> None:
    """A failed sign-in to an owner's account goes in the audit log (throttling bounds how many);
    one for an address that is no owner's does not: what strangers type stays out of a log that
    is never pruned, and they cannot fill it."""
    owner = find_owner(session, email)
    if owner is not None:
        audit.record(session, audit.Actor(owner.email, ip), "sign-in failed", now)


def current(app: App, session_id: str, now: datetime) -> OwnerSessionInfo | None:
    """The live session with this id, or None (an expired one is removed on the way)."""
    if not session_id or len(session_id) > 200:
        return None
    settings, id_hash = app.config.console, session_handle(session_id)
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
        id_hash = session_handle(session_id)
        info = _current(session, app.config.console, id_hash, now)
        session.execute(delete(m.OwnerSession).where(m.OwnerSession.id_hash == id_hash))
        if info is not None:
            audit.record(session, info.actor(ip), "logged out", now)


# ---------------------------------------------------------------- her own sessions and password


@dataclass(frozen=True)
class SessionRow:
    handle: str
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    this_one: bool


def list_sessions(app: App, owner_id: int, this_session_id: str, now: datetime) -> list[SessionRow]:
    """The owner's live sessions, this one first, then the most recently used."""
    settings, mine = app.config.console, session_handle(this_session_id)
    with reading(app.engine) as session:
        rows = session.scalars(select(m.OwnerSession).where(m.OwnerSession.owner_id == owner_id)).all()
        live = [
            SessionRow(
                row.id_hash, row.created_at, row.last_seen_at, row.ip, row.user_agent, row.id_hash == mine
            )
            for row in rows
            if not _expired(row, settings, now)
        ]
    return sorted(live, key=lambda row: (not row.this_one, -row.last_seen_at.timestamp()))


def end_sessions(app: App, owner_id: int, this_session_id: str, *, handle: str | None) -> int:
    """End one of the owner's other sessions (by handle), or all of them (`handle` None).
    Her own current session is never ended here (that is signing out). Returns how many ended."""
    query = delete(m.OwnerSession).where(
        m.OwnerSession.owner_id == owner_id, m.OwnerSession.id_hash != session_handle(this_session_id)
    )
    if handle is not None:
        query = query.where(m.OwnerSession.id_hash == handle)
    with transaction(app.engine) as session:
        return int(session.execute(query).rowcount)  # type: ignore[attr-defined]


WRONG_PASSWORD = "the password is not right: type the one you sign in with"
TOO_MANY_TRIES = "too many wrong passwords: for safety, wait 15 minutes and try again"


def check_password_again(app: App, owner_id: int, password: str, ip: str | None, now: datetime) -> None:
    """Raises InputError unless `password` is the owner's. Asked before a change to the
    account, and counted like a sign-in attempt: a stolen session cannot guess the password."""
    with transaction(app.engine) as session:
        owner = session.get(m.Owner, owner_id)
        if owner is None:
            raise InputError("this owner account is not there any more")
        account, network = account_key(owner.email), network_of(ip)
        if throttle_state(session, account, network, now).network_locked:
            raise InputError(TOO_MANY_TRIES)
        if password_matches(owner, password):
            return
        record_attempt(session, account, network, now, m.LoginOutcome.FAILED)  # committed on the way out
    raise InputError(WRONG_PASSWORD)


def change_password(
    app: App,
    owner_id: int,
    this_session_id: str,
    current_password: str,
    new_password: str,
    ip: str | None,
    now: datetime,
) -> None:
    """Her new password; every other session of hers ends (this one stays)."""
    check_password_again(app, owner_id, current_password, ip, now)
    with transaction(app.engine) as session:
        owner = session.get(m.Owner, owner_id)
        if owner is None:
            raise InputError("this owner account is not there any more")
        set_password(session, owner, new_password, now, keep=session_handle(this_session_id))
