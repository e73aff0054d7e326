"""Running the sending: holds placed by alerts, the passes' record, the owner's notices
and saved settings, providers' shared rate schedules."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class OwnerNotice(Base):
    """Each weekly summary and alert sent to the owner, so that it goes out once.

    The row is written before the email (like a delivery's claim): two daemons cannot
    both send the same week's summary, or two alerts on one day.
    """

    __tablename__ = "owner_notices"
    __table_args__ = (UniqueConstraint("kind", "period"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "summary" or "alert"
    period: Mapped[str] = mapped_column(
        String(40)
    )  # the summary's Monday, or the alert's day (practice time)
    sent_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(String(500))  # what an alert was about; never an address


class HoldKind(StrEnum):
    NEWSLETTERS = "newsletters"  # spam complaints past the stop line: newsletters wait
    ALL = "all"  # bounces past the pause line: the sending pass sends nothing


class SendingHold(Base):
    """Sending stopped by an alert until the owner says to go on (nurture.sending.holds)."""

    __tablename__ = "sending_holds"
    __table_args__ = (
        # One hold of a kind in place at a time, even when several workers' alerts race.
        Index(
            "uq_sending_holds_kind_in_place",
            "kind",
            unique=True,
            sqlite_where=text("lifted_at IS NULL"),
            postgresql_where=text("lifted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))  # in words, with the numbers; never an address
    placed_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None] = mapped_column(index=True)
    lifted_by: Mapped[str | None] = mapped_column(String(320))  # the owner's address at the time


class SendPassRecord(Base):
    """When each sending pass ran and how it ended, for the console's today page."""

    __tablename__ = "send_passes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime] = mapped_column(index=True)
    sent: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    stuck: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(300))  # "ok" or what went wrong, in words


class SavedSetting(Base):
    """A setting the owner changed on the console's Settings page, by its dotted key
    ("delivery.send_window.start"). It overrides config.yaml; an environment variable
    overrides both (nurture.config.overrides says how they are combined)."""

    __tablename__ = "saved_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    saved_at: Mapped[datetime]
    saved_by: Mapped[str] = mapped_column(String(320))  # the owner's address at the time


class RateSchedule(Base):
    """One provider's sending timeline, shared by every worker on this store
    (nurture.providers.rate_limit): the moment its next free slot starts."""

    __tablename__ = "rate_schedules"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)  # seconds since the epoch
