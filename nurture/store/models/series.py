"""Series: each person's place in a campaign, the owner's switches, the published versions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nurture.store.models.base import Base, Id


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"  # in the series: the next step is due at next_due_at
    COMPLETED = "completed"
    STOPPED = "stopped"


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "campaign"),
        Index("ix_enrollments_due", "status", "next_due_at", "id"),  # claimed in this order
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(Id, ForeignKey("subscribers.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(100))
    next_step: Mapped[int] = mapped_column(Integer)  # 1-based position of the next step in `version`
    # The place that counts: the key of the next step and the published version it is
    # taken from. NULL only on rows from before series versions, until version 1 exists.
    next_step_key: Mapped[str | None] = mapped_column(String(120))
    version: Mapped[int | None] = mapped_column(Integer)
    next_due_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    enrolled_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignState(Base):
    """Owner's switches for a campaign defined in campaigns/<slug>/."""

    __tablename__ = "campaign_states"

    campaign: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SeriesVersion(Base):
    """One published version of a series: what the sending pass sends, never the files.

    `snapshot` holds the campaign.yaml settings and, per step in order, its key, file,
    delay and the email as approved (see nurture.series.versions).
    """

    __tablename__ = "series_versions"
    __table_args__ = (UniqueConstraint("campaign", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, ... per campaign
    published_at: Mapped[datetime]
    snapshot: Mapped[dict[str, Any]]
