"""The owner console: owners, their recovery codes, invites, sessions, login attempts
and the audit of their actions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class Owner(Base):
    """A person who may use the web console. Only a hash of the password is kept; the code
    app's secret only sealed (nurture.at_rest), so a copy of the database holds neither."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters and salt
    totp_sealed: Mapped[str | None] = mapped_column(String(255))
    # The time step of the last code accepted: a code works once, even within its 30 seconds.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # A code app being set up in the console: it replaces totp_sealed once a code from it is typed.
    totp_pending_sealed: Mapped[str | None] = mapped_column(String(255))
    totp_pending_at: Mapped[datetime | None]
    totp_pending_misses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]


class OwnerRecoveryCode(Base):
    """One-time codes that stand in for the code app (a lost phone). Only their SHA-256 is
    kept: each is 80 random bits, so the hash cannot be searched back."""

    __tablename__ = "owner_recovery_codes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Id, ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OwnerInvite(Base):
    """An invitation to become an owner: a one-time link that expires. Only the SHA-256 of
    the link's token is kept; a used one stays, so a second use can be told apart."""

    __tablename__ = "owner_invites"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    invited_by: Mapped[str] = mapped_column(String(320))  # the inviting owner's address at the time
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class OwnerSession(Base):
    """A console login. The cookie holds the session id; the store holds only its SHA-256,
    so a copy of the database does not let anyone in."""

    __tablename__ = "owner_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[int] = mapped_column(Id, ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))  # so she can tell her sessions apart


class LoginOutcome(StrEnum):
    SIGNED_IN = "signed_in"
    FAILED = "failed"  # a wrong address, password or (when none is set up) anything
    WRONG_CODE = "wrong_code"  # the right password with a wrong code: counted apart (brute force)


class LoginAttempt(Base):
    """Each console login attempt, for throttling across processes. `account` is a hash of
    the address typed, whether or not an owner has it; `ip` the network it came from
    (nurture.owners.throttle.network_of)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_at", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime]
    account: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(45), index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # a LoginOutcome


class OwnerAuditEntry(Base):
    """Every owner action. Append-only: the migration installs triggers that refuse UPDATE
    and DELETE. Subscribers are named by id, never by address, so forgetting someone
    leaves nothing personal here."""

    __tablename__ = "owner_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    owner: Mapped[str] = mapped_column(String(320))  # the owner's address at the time
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str | None] = mapped_column(String(400))
    ip: Mapped[str | None] = mapped_column(String(45))
