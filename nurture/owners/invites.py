"""Inviting another owner: a one-time link by email that expires after INVITE_FOR.

The link carries a random token; the store keeps only its SHA-256. The invitation is
written before the email goes out and removed again if it could not be sent (the
`Ledger` of nurture.sending.one_email.send_now). Opening the link shows a form for a
password; the account is made, and the invitation used up, in one transaction, so two
uses of one link make one account at most.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.app import App
from nurture.content.prepared import Recipient
from nurture.errors import FatalTransportError, InputError, NotFound
from nurture.owners.accounts import OwnerInfo, create_owner, hash_password, info_of
from nurture.sending.one_email import send_now
from nurture.store import models as m
from nurture.store.db import is_postgres, reading, transaction

INVITE_FOR = timedelta(days=3)
JOIN_PATH = "/console/join/"
NAME = "owner-invite"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def join_url(app: App, token: str) -> str:
    return app.config.web.public_base_url + JOIN_PATH + token


@dataclass(frozen=True)
class Invitation:
    id: int
    email: str
    invited_by: str
    created_at: datetime
    expires_at: datetime


def _invitation(row: m.OwnerInvite) -> Invitation:
    return Invitation(row.id, row.email, row.invited_by, row.created_at, row.expires_at)


def invite_body(app: App, inviter: str, url: str, expires_at: datetime) -> str:
    practice = app.config.practice.name
    return "\n".join(
        [
            f"{inviter} has invited you to share the email console of {practice}: the place to "
            "write and schedule its emails and see how they do.",
            "",
            f"[Accept the invitation and choose a password]({url})",
            "",
            f"The link works once, until {expires_at:%d %B %Y, %H:%M} UTC. If you were not "
            "expecting this, you can ignore this email: nothing happens unless the link is opened "
            "and a password chosen.",
        ]
    )


@dataclass
class _InviteRecord:
    """The invitation row, as the ledger of `send_now`: written first, removed if not sent."""

    app: App
    row: m.OwnerInvite
    invite_id: int | None = None

    def claim(self) -> bool:
        with transaction(self.app.engine) as session:
            key = self.row.email_key
            if session.scalar(select(m.Owner.id).where(m.Owner.email_key == key)) is not None:
                raise InputError("that address already has an owner account: nothing was sent")
            session.add(self.row)
            session.flush()
            self.invite_id = self.row.id
        return True

    def release(self) -> None:
        with transaction(self.app.engine) as session:
            row = session.get(m.OwnerInvite, self.invite_id)
            if row is not None:
                session.delete(row)


def invite_owner(app: App, inviter: str, email: str, now: datetime) -> Invitation:
    """Email `email` a link to make an owner account. An earlier, unused invitation to the
    same address stops working (only the newest link does)."""
    address, key = normalize_email(email)
    token = secrets.token_urlsafe(32)
    expires_at = now + INVITE_FOR
    prepared = app.renderer.prepare_notice(
        NAME,
        f"You are invited to the email console of {app.config.practice.name}",
        "Choose a password to start: the link works once.",
        invite_body(app, inviter, join_url(app, token), expires_at),
    )
    with transaction(app.engine) as session:
        for older in session.scalars(_open_invites(now).where(m.OwnerInvite.email_key == key)):
            older.expires_at = now  # superseded
    record = _InviteRecord(
        app,
        m.OwnerInvite(
            token_hash=_hash(token),
            email=address,
            email_key=key,
            invited_by=inviter,
            created_at=now,
            expires_at=expires_at,
        ),
    )
    try:
        send_now(
            app.transport,
            prepared,
            Recipient(email=address, first_name=None),
            kind=NAME,
            label=NAME,
            what="the invitation",
            error=InputError,
            ledger=record,
        )
    except (OSError, FatalTransportError):  # no transport could take it; send_now removed the invitation
        raise InputError(
            "the invitation email could not be sent from the server. Try again later; "
            "if it keeps failing, ask whoever looks after the server"
        ) from None
    assert record.invite_id is not None
    return Invitation(record.invite_id, address, inviter, now, expires_at)


def _open_invites(now: datetime) -> Select[m.OwnerInvite]:
    return select(m.OwnerInvite).where(m.OwnerInvite.used_at.is_(None), m.OwnerInvite.expires_at > now)


def open_invitations(app: App, now: datetime) -> list[Invitation]:
    with reading(app.engine) as session:
        return [_invitation(row) for row in session.scalars(_open_invites(now).order_by(m.OwnerInvite.id))]


def cancel_invitation(app: App, invite_id: int, now: datetime) -> str:
    """The link stops working. Returns the address it was for."""
    with transaction(app.engine) as session:
        row = session.scalar(_open_invites(now).where(m.OwnerInvite.id == invite_id))
        if row is None:
            raise NotFound("that invitation is not open any more (used, expired or cancelled already)")
        row.expires_at = now
        return row.email


class InviteUnusable(InputError):
    """The link is not one we sent, was used already, or has expired; the message says which."""


def _usable(session: Session, token: str, now: datetime, *, lock: bool = False) -> m.OwnerInvite:
    query = select(m.OwnerInvite).where(m.OwnerInvite.token_hash == _hash(token))
    if lock and is_postgres(session):
        query = query.with_for_update()
    row = session.scalar(query) if 20 <= len(token) <= 100 else None
    if row is None:
        raise InviteUnusable(
            "this invitation link is not valid: it may have been cut short, or cancelled. "
            "Ask the person who invited you for a new one."
        )
    if row.used_at is not None:
        raise InviteUnusable(
            "this invitation has been used already: each link works once. "
            "If that was you, sign in; if not, tell the person who invited you."
        )
    if row.expires_at <= now:
        raise InviteUnusable(
            "this invitation has expired (or a newer one was sent): "
            "ask the person who invited you for a new one."
        )
    return row


def read_invitation(app: App, token: str, now: datetime) -> Invitation:
    with reading(app.engine) as session:
        return _invitation(_usable(session, token, now))


def accept_invitation(app: App, token: str, password: str, now: datetime) -> OwnerInfo:
    """The new owner's account, and the invitation used up, in one transaction."""
    digest = hash_password(password)
    with transaction(app.engine) as session:
        row = _usable(session, token, now, lock=True)
        owner = create_owner(session, row.email, digest, now)
        row.used_at = now
        return info_of(owner)
