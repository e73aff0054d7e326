"""Owner accounts: argon2id password hashes and an optional TOTP second factor.

Passwords are at least 12 characters. The TOTP secret is kept in the store in
clear (an authenticator needs the same secret); whoever can read the database
can already read every subscriber, so it adds no new exposure.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.app import App
from nurture.errors import InputError, NotFound
from nurture.store import models as m
from nurture.store.db import reading, transaction

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a huge body from costing CPU
ISSUER = "nurture console"
# argon2-cffi's defaults are argon2id (RFC 9106 low-memory profile).
HASHER = PasswordHasher()
# Verified against when the address has no account, so a miss costs as long as a hit.
_DUMMY_HASH = HASHER.hash("not a password of anybody's")


@dataclass(frozen=True)
class OwnerInfo:
    id: int
    email: str
    has_totp: bool
    created_at: datetime


def _info(owner: m.Owner) -> OwnerInfo:
    return OwnerInfo(owner.id, owner.email, owner.totp_secret is not None, owner.created_at)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"the password is too short: use at least {MIN_PASSWORD} "
            "characters (a few words in a row are easy to remember)"
        )
    if len(password) > MAX_PASSWORD:
        raise InputError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


def _find(session: Session, email: str) -> m.Owner | None:
    _, key = normalize_email(email)
    return session.scalar(select(m.Owner).where(m.Owner.email_key == key))


def _get(session: Session, email: str) -> m.Owner:
    owner = _find(session, email)
    if owner is None:
        raise NotFound("no owner account with that address (`nurture owner list` shows them)")
    return owner


def add_owner(app: App, email: str, password: str, now: datetime) -> OwnerInfo:
    address, key = normalize_email(email)
    digest = HASHER.hash(check_password(password))
    with transaction(app.engine) as session:
        if session.scalar(select(m.Owner.id).where(m.Owner.email_key == key)) is not None:
            raise InputError(
                "an owner account with that address already exists "
                "(to change its password: nurture owner reset-password)"
            )
        owner = m.Owner(
            email=address, email_key=key, password_hash=digest, created_at=now, password_changed_at=now
        )
        session.add(owner)
        session.flush()
        return _info(owner)


def list_owners(app: App) -> list[OwnerInfo]:
    with reading(app.engine) as session:
        return [_info(owner) for owner in session.scalars(select(m.Owner).order_by(m.Owner.id))]


def owner_count(app: App) -> int:
    with reading(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.Owner)) or 0)


def any_owner_has_totp(app: App) -> bool:
    with reading(app.engine) as session:
        return session.scalar(select(m.Owner.id).where(m.Owner.totp_secret.is_not(None)).limit(1)) is not None


def remove_owner(app: App, email: str) -> None:
    """Delete the account; its sessions end with it (cascade)."""
    with transaction(app.engine) as session:
        session.delete(_get(session, email))


def reset_password(app: App, email: str, password: str, now: datetime) -> None:
    """New password; every session of the account ends, so a stolen one stops working."""
    digest = HASHER.hash(check_password(password))
    with transaction(app.engine) as session:
        owner = _get(session, email)
        owner.password_hash = digest
        owner.password_changed_at = now
        session.query(m.OwnerSession).filter(m.OwnerSession.owner_id == owner.id).delete()


def enrol_totp(app: App, email: str) -> tuple[str, str]:
    """A new TOTP secret for the account (replacing any old one). Returns (secret, otpauth URI)."""
    secret = pyotp.random_base32()
    with transaction(app.engine) as session:
        owner = _get(session, email)
        owner.totp_secret = secret
        owner.totp_last_step = None
        address = owner.email
    return secret, pyotp.TOTP(secret).provisioning_uri(name=address, issuer_name=ISSUER)


def _totp_step(secret: str, digits: str, now: datetime) -> int | None:
    """The time step whose code `digits` is: now's, or one either side for a slow clock."""
    if not digits.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(moment), digits):
            return totp.timecode(moment)
    return None


def verify(
    session: Session, email: str, password: str, code: str, *, require_totp: bool, now: datetime
) -> m.Owner | None:
    """The owner when the address, password and (if enrolled or required) code all match.

    Every miss looks and takes the same: an unknown address still pays for one argon2 check.
    """
    try:
        owner = _find(session, email)
    except InputError:
        owner = None
    password = password[:MAX_PASSWORD]
    try:
        HASHER.verify(owner.password_hash if owner else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if owner is None:
        return None
    if owner.totp_secret is None:
        return None if require_totp else owner
    step = _totp_step(owner.totp_secret, "".join(code.split()), now)
    if step is None or (owner.totp_last_step is not None and step <= owner.totp_last_step):
        return None  # wrong, too old, or already used once
    owner.totp_last_step = step
    if HASHER.check_needs_rehash(owner.password_hash):
        owner.password_hash = HASHER.hash(password)
    return owner
