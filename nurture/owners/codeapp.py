"""The second factor: a code app (TOTP, RFC 6238) and one-time recovery codes.

The app's secret is kept sealed (nurture.at_rest) under NURTURE_SECRET_KEY. In the
console a new app is set up in two steps: a pending secret is shown as a QR code, and
it replaces the old one only once a code from it has been typed (so a mis-scanned app
never locks anyone out). Confirming also makes RECOVERY_COUNT recovery codes, shown
once: each works once in place of a code, and only its SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.at_rest import SealError, open_sealed, seal
from nurture.config import Config
from nurture.errors import InputError, NotFound
from nurture.owners.accounts import get_owner
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

ISSUER = "nurture console"
PURPOSE = "totp"  # the sealing purpose; the migration 0007a seals with the same
PENDING_FOR = timedelta(minutes=30)
PENDING_MISSES = 5  # wrong codes while setting up: then the setup starts again
RECOVERY_COUNT = 10
RECOVERY_LENGTH = 16  # characters of Crockford's base32: 80 bits
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_READ_AS = str.maketrans({"o": "0", "i": "1", "l": "1"})


class Factor(Enum):
    """What the code typed at sign-in amounts to."""

    PASSED = "passed"
    PASSED_WITH_RECOVERY = "passed with a recovery code"
    MISSING = "missing"  # nothing typed: not a guess
    WRONG = "wrong"  # a guess that failed: counted against code guessing
    LOCKED = "locked"  # too many wrong codes lately: codes are not taken now


@dataclass(frozen=True)
class Setup:
    secret: str
    uri: str
    started_at: datetime


def _bound(owner_id: int) -> str:
    return f"owner {owner_id}"


def _seal(config: Config, owner_id: int, secret: str) -> str:
    return seal(config.secrets.require_secret_key(), PURPOSE, secret, bound_to=_bound(owner_id))


def _open(config: Config, owner_id: int, sealed: str) -> tuple[str, bool] | None:
    """(secret, stale) or None when no key opens it (logged: the keys were changed wrongly)."""
    try:
        opened = open_sealed(config.secrets.store_keys(), PURPOSE, sealed, bound_to=_bound(owner_id))
    except SealError:
        log.warning(
            "a code app secret could not be decrypted: NURTURE_SECRET_KEY changed without the old key "
            "in NURTURE_PREVIOUS_SECRET_KEYS"
        )
        return None
    return opened.value, opened.stale


def _uri(secret: str, address: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=address, issuer_name=ISSUER)


def totp_step(secret: str, digits: str, now: datetime) -> int | None:
    """The time step whose code `digits` is: now's, or one either side for a slow clock."""
    if not (digits.isascii() and digits.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    for drift in (0, -1, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(moment), digits):
            return totp.timecode(moment)
    return None


def _compact(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def looks_like_recovery_code(code: str) -> bool:
    compact = _compact(code).translate(_READ_AS)
    return len(compact) == RECOVERY_LENGTH and all(ch in _ALPHABET for ch in compact)


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_compact(code).translate(_READ_AS).encode("ascii")).hexdigest()


def _new_recovery_codes(session: Session, owner_id: int, now: datetime) -> list[str]:
    """RECOVERY_COUNT fresh codes for the owner; the old ones stop working."""
    session.execute(delete(m.OwnerRecoveryCode).where(m.OwnerRecoveryCode.owner_id == owner_id))
    codes = [
        "".join(secrets.choice(_ALPHABET) for _ in range(RECOVERY_LENGTH)) for _ in range(RECOVERY_COUNT)
    ]
    for code in codes:
        session.add(m.OwnerRecoveryCode(owner_id=owner_id, code_hash=_recovery_hash(code), created_at=now))
    return ["-".join(code[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4)) for code in codes]


# ---------------------------------------------------------------- signing in


def check_code(
    session: Session, config: Config, owner: m.Owner, code: str, now: datetime, *, codes_locked: bool
) -> Factor:
    """Check the second factor of an owner who has one, and use it up (a code or recovery
    code works once). The caller has checked the password."""
    assert owner.totp_sealed is not None
    if looks_like_recovery_code(code):
        row = session.scalar(
            select(m.OwnerRecoveryCode).where(
                m.OwnerRecoveryCode.owner_id == owner.id,
                m.OwnerRecoveryCode.code_hash == _recovery_hash(code),
                m.OwnerRecoveryCode.used_at.is_(None),
            )
        )
        if row is None:
            return Factor.WRONG
        row.used_at = now
        return Factor.PASSED_WITH_RECOVERY
    if codes_locked:
        return Factor.LOCKED
    digits = _compact(code)
    if not digits:
        return Factor.MISSING
    opened = _open(config, owner.id, owner.totp_sealed)
    if opened is None:
        return Factor.WRONG
    secret, stale = opened
    step = totp_step(secret, digits, now)
    if step is None or (owner.totp_last_step is not None and step <= owner.totp_last_step):
        return Factor.WRONG  # wrong, too old, or already used once
    owner.totp_last_step = step
    if stale:
        owner.totp_sealed = _seal(config, owner.id, secret)
    return Factor.PASSED


def recovery_codes_left(app: App, owner_id: int) -> int:
    with reading(app.engine) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(m.OwnerRecoveryCode)
                .where(m.OwnerRecoveryCode.owner_id == owner_id, m.OwnerRecoveryCode.used_at.is_(None))
            )
            or 0
        )


# ---------------------------------------------------------------- setting up


def enrol_totp(app: App, email: str) -> tuple[str, str]:
    """`nurture owner totp`: a new secret at once, replacing any old one. Returns (secret, otpauth URI)."""
    secret = pyotp.random_base32()
    with transaction(app.engine) as session:
        owner = get_owner(session, email)
        owner.totp_sealed = _seal(app.config, owner.id, secret)
        owner.totp_last_step = None
        address = owner.email
    return secret, _uri(secret, address)


def _owner(session: Session, owner_id: int) -> m.Owner:
    owner = session.get(m.Owner, owner_id)
    if owner is None:
        raise NotFound("this owner account is not there any more")
    return owner


def start_setup(app: App, owner_id: int, now: datetime) -> Setup:
    """A new pending secret; the app in use (if any) keeps working until a code from this one is typed."""
    secret = pyotp.random_base32()
    with transaction(app.engine) as session:
        owner = _owner(session, owner_id)
        owner.totp_pending_sealed = _seal(app.config, owner.id, secret)
        owner.totp_pending_at = now
        owner.totp_pending_misses = 0
        return Setup(secret, _uri(secret, owner.email), now)


def pending_setup(app: App, owner_id: int, now: datetime) -> Setup | None:
    with reading(app.engine) as session:
        owner = _owner(session, owner_id)
        if owner.totp_pending_sealed is None or owner.totp_pending_at is None:
            return None
        if now - owner.totp_pending_at > PENDING_FOR:
            return None
        opened = _open(app.config, owner.id, owner.totp_pending_sealed)
        if opened is None:
            return None
        return Setup(opened[0], _uri(opened[0], owner.email), owner.totp_pending_at)


class SetupRefused(InputError):
    """The code typed while setting up did not match, or the setup has lapsed."""


def confirm_setup(app: App, owner_id: int, code: str, now: datetime) -> list[str]:
    """The pending secret becomes the owner's code app when `code` is one of its codes.
    Returns the new recovery codes (to be shown once)."""
    refusal = None
    with transaction(app.engine) as session:
        owner = _owner(session, owner_id)
        pending = owner.totp_pending_sealed
        if pending is None or owner.totp_pending_at is None or now - owner.totp_pending_at > PENDING_FOR:
            raise SetupRefused("the setup has lapsed (it lasts 30 minutes): start again")
        opened = _open(app.config, owner.id, pending)
        step = totp_step(opened[0], _compact(code), now) if opened else None
        if step is not None:
            owner.totp_sealed = pending
            owner.totp_last_step = step
            owner.totp_pending_sealed = owner.totp_pending_at = None
            owner.totp_pending_misses = 0
            return _new_recovery_codes(session, owner.id, now)
        # A miss is kept (the transaction commits), then she is told: guessing has a limit.
        owner.totp_pending_misses += 1
        refusal = "that code did not match: type the six digits the app shows now"
        if owner.totp_pending_misses >= PENDING_MISSES:
            owner.totp_pending_sealed = owner.totp_pending_at = None
            owner.totp_pending_misses = 0
            refusal = (
                f"that code did not match {PENDING_MISSES} times, so this setup has ended: "
                "start again, and scan the new QR code"
            )
    raise SetupRefused(refusal)


def remove_code_app(app: App, owner_id: int) -> None:
    """No second factor any more; the recovery codes go too. Refused when every owner must have one."""
    if app.config.console.require_totp:
        raise InputError(
            "this practice requires a code app for every owner, so it cannot be removed; "
            "to move to a new phone, set up the new one instead (the old one stops working then)"
        )
    with transaction(app.engine) as session:
        owner = _owner(session, owner_id)
        owner.totp_sealed = None
        owner.totp_last_step = None
        owner.totp_pending_sealed = owner.totp_pending_at = None
        session.execute(delete(m.OwnerRecoveryCode).where(m.OwnerRecoveryCode.owner_id == owner_id))


def replace_recovery_codes(app: App, owner_id: int, now: datetime) -> list[str]:
    with transaction(app.engine) as session:
        owner = _owner(session, owner_id)
        if owner.totp_sealed is None:
            raise InputError("recovery codes stand in for the code app: set up a code app first")
        return _new_recovery_codes(session, owner.id, now)


def reseal_all(app: App) -> int:
    """Seal every code app secret again with the current key (after a key rotation), so the
    previous key can be dropped. Returns how many were sealed again."""
    count = 0
    with transaction(app.engine) as session:
        for owner in session.scalars(select(m.Owner)):
            for column in ("totp_sealed", "totp_pending_sealed"):
                sealed = getattr(owner, column)
                if sealed is None:
                    continue
                opened = _open(app.config, owner.id, sealed)
                if opened is None:
                    raise InputError(
                        f"the code app secret of {owner.email} cannot be decrypted with "
                        "NURTURE_SECRET_KEY or NURTURE_PREVIOUS_SECRET_KEYS: add the key it was "
                        "sealed with, or remove its code app with `nurture owner totp`"
                    )
                if opened[1]:
                    setattr(owner, column, _seal(app.config, owner.id, opened[0]))
                    count += 1
    return count
