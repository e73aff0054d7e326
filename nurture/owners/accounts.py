"""Owner accounts: argon2id password hashes, adding, listing, removing, passwords.

Passwords are at least 12 characters. The code app (TOTP) and recovery codes are in
nurture.owners.codeapp; signing in and sessions in nurture.owners.sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.app import App
from nurture.errors import InputError, NotFound
from nurture.store import models as m
from nurture.store.db import is_postgres, reading, transaction

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length; a cap keeps a huge body from costing CPU
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


def info_of(owner: m.Owner) -> OwnerInfo:
    return OwnerInfo(owner.id, owner.email, owner.totp_sealed is not None, owner.created_at)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"the password is too short: use at least {MIN_PASSWORD} "
            "characters (a few words in a row are easy to remember)"
        )
    if len(password) > MAX_PASSWORD:
        raise InputError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return HASHER.hash(check_password(password))


def password_matches(owner: m.Owner | None, password: str) -> bool:
    """Whether `password` is the owner's; with no owner, as slow as a real check, and False."""
    try:
        HASHER.verify(owner.password_hash if owner else _DUMMY_HASH, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False
    if owner is None:
        return False
    if HASHER.check_needs_rehash(owner.password_hash):
        owner.password_hash = HASHER.hash(password[:MAX_PASSWORD])
    return True


def find_owner(session: Session, email: str) -> m.Owner | None:
    try:
        _, key = normalize_email(email)
    except InputError:
        return None
    return session.scalar(select(m.Owner).where(m.Owner.email_key == key))


def get_owner(session: Session, email: str) -> m.Owner:
    owner = find_owner(session, email)
    if owner is None:
        raise NotFound("no owner account with that address (`nurture owner list` shows them)")
    return owner


class OwnerExists(InputError):
    """An account with that address is there already."""


def create_owner(session: Session, email: str, password_hash: str, now: datetime) -> m.Owner:
    address, key = normalize_email(email)
    if session.scalar(select(m.Owner.id).where(m.Owner.email_key == key)) is not None:
        raise OwnerExists("an owner account with that address exists already: sign in with it")
    owner = m.Owner(
        email=address, email_key=key, password_hash=password_hash, created_at=now, password_changed_at=now
    )
    session.add(owner)
    session.flush()
    return owner


def add_owner(app: App, email: str, password: str, now: datetime) -> OwnerInfo:
    """`nurture owner add`."""
    digest = hash_password(password)
    try:
        with transaction(app.engine) as session:
            return info_of(create_owner(session, email, digest, now))
    except OwnerExists:
        raise InputError(
            "an owner account with that address already exists "
            "(to change its password: nurture owner reset-password)"
        ) from None


def list_owners(app: App) -> list[OwnerInfo]:
    with reading(app.engine) as session:
        return [info_of(owner) for owner in session.scalars(select(m.Owner).order_by(m.Owner.id))]


def owner_count(app: App) -> int:
    with reading(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.Owner)) or 0)


def any_owner_has_totp(app: App) -> bool:
    with reading(app.engine) as session:
        return session.scalar(select(m.Owner.id).where(m.Owner.totp_sealed.is_not(None)).limit(1)) is not None


def remove_owner(app: App, email: str) -> None:
    """Delete the account; its sessions end with it (cascade)."""
    with transaction(app.engine) as session:
        session.delete(get_owner(session, email))


class LastOwner(InputError):
    """Removing this account would leave the console without anyone to sign in."""


def remove_owner_by_id(app: App, owner_id: int) -> str:
    """The console's removal: never the last owner. Returns the address removed."""
    with transaction(app.engine) as session:
        # Two owners removing each other at once must not both succeed: on PostgreSQL
        # every owner row is locked first (SQLite's write transaction already is exclusive).
        query = select(m.Owner).order_by(m.Owner.id)
        owners = list(session.scalars(query.with_for_update() if is_postgres(session) else query))
        owner = next((row for row in owners if row.id == owner_id), None)
        if owner is None:
            raise NotFound("that owner account is not there any more (perhaps someone removed it already)")
        if len(owners) == 1:
            raise LastOwner(
                "this is the only owner account: the console would have nobody left to sign in. "
                "Invite someone else first if this account is to go."
            )
        email = owner.email
        session.delete(owner)
        return email


def reset_password(app: App, email: str, password: str, now: datetime) -> None:
    """New password; every session of the account ends, so a stolen one stops working."""
    digest = hash_password(password)
    with transaction(app.engine) as session:
        owner = get_owner(session, email)
        owner.password_hash = digest
        owner.password_changed_at = now
        session.execute(delete(m.OwnerSession).where(m.OwnerSession.owner_id == owner.id))


def set_password(session: Session, owner: m.Owner, password: str, now: datetime, *, keep: str | None) -> None:
    """New password for `owner`; every other session ends (`keep`: the id hash of the one to keep)."""
    owner.password_hash = hash_password(password)
    owner.password_changed_at = now
    ending = delete(m.OwnerSession).where(m.OwnerSession.owner_id == owner.id)
    if keep is not None:
        ending = ending.where(m.OwnerSession.id_hash != keep)
    session.execute(ending)
