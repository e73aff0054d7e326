"""The Results pages' summaries: per day, per email and per quarter hour."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class ResultDayState(StrEnum):
    WORKING = "working"  # claimed by a summarizer, not done yet: read live
    DONE = "done"  # its counts are in result_counts and result_sends
    DIRTY = "dirty"  # something changed after: read live until summarized again


class ResultDay(Base):
    """A UTC day of sends whose results are kept summarized (nurture.reporting.result_days),
    so the Results pages do not read every delivery and event ever stored."""

    __tablename__ = "result_days"

    day: Mapped[datetime] = mapped_column(primary_key=True)  # the day's UTC midnight
    state: Mapped[str] = mapped_column(String(10), index=True)
    summarized_at: Mapped[datetime]


class ResultCount(Base):
    """One email's counts for the deliveries sent on one summarized day (see stats.step_stats)."""

    __tablename__ = "result_counts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    day: Mapped[datetime] = mapped_column(index=True)
    stream: Mapped[str] = mapped_column(String(120))
    step_key: Mapped[str] = mapped_column(String(120))
    series_version: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    newsletter_id: Mapped[int | None] = mapped_column(Id)
    sent: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    clicked: Mapped[int] = mapped_column(Integer)
    bounced: Mapped[int] = mapped_column(Integer)
    complained: Mapped[int] = mapped_column(Integer)
    unsubscribed: Mapped[int] = mapped_column(Integer)


class ResultSends(Base):
    """Sends of one summarized day per quarter hour (UTC), series and newsletters apart."""

    __tablename__ = "result_sends"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    day: Mapped[datetime] = mapped_column(index=True)
    stream: Mapped[str] = mapped_column(String(120))
    quarter_start: Mapped[datetime]
    newsletter: Mapped[bool] = mapped_column(Boolean)
    sent: Mapped[int] = mapped_column(Integer)
