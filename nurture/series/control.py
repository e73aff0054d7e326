"""The owner's switches for a series: start it for people already on the list, pause, resume.

`start` enrolls the matching active subscribers from a moment on; the sending
pass then sends each step inside each person's own send window, under the
daily cap, exactly as for someone who just confirmed. Enrolling is idempotent:
people already in the series keep their place, and someone carrying one of the
campaign's stop_on_tags (for example "booked") is never enrolled.

`pause` holds every enrollment of the campaign (the claim query skips paused
campaigns); `resume` releases them: emails that fell due during the pause go out
at the next pass inside each person's window, one a day at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.addresses import clean_tag
from nurture.content.campaigns import Campaign
from nurture.errors import InputError, NotFound
from nurture.series.catalog import SeriesStore
from nurture.series.enrollment import enroll_in_campaign
from nurture.store import models as m
from nurture.store.db import reading, transaction


@dataclass(frozen=True)
class StartResult:
    campaign: str
    start: datetime
    matched: int  # active subscribers matching the tag (all active ones without a tag)
    enrolled: int  # newly enrolled, or resumed after being stopped
    paused: bool  # the campaign is paused: nothing goes out until it is resumed

    @property
    def unchanged(self) -> int:
        """Matched but left alone: already in the series, or carrying a stop tag."""
        return self.matched - self.enrolled


def _campaign(app: SeriesStore, slug: str) -> Campaign:
    published = app.catalog.current(app.engine)
    campaign = published.get(slug)
    if campaign is None:
        known = ", ".join(sorted(published)) or "none"
        raise NotFound(f"no campaign {slug!r} in {app.config.campaigns_dir} (campaigns: {known})")
    return campaign


def _state(session: Session, slug: str, now: datetime) -> m.CampaignState:
    state = session.get(m.CampaignState, slug)
    if state is None:
        state = m.CampaignState(campaign=slug, paused=False, started_at=None, updated_at=now)
        session.add(state)
    return state


def start(
    app: SeriesStore, campaign: str, *, now: datetime, at: datetime | None = None, tag: str | None = None
) -> StartResult:
    """Enroll the active subscribers (with `tag`, if given) in `campaign` from `at` (default: now).

    The first step falls due at `at` plus its delay_days; the pass waits for each
    person's send window.
    """
    series = _campaign(app, campaign)
    moment = now if at is None else at
    if moment.tzinfo is None:
        raise InputError("the start time needs a time zone")
    if moment < now:
        raise InputError(
            f"--at {moment:%Y-%m-%d %H:%M} UTC is in the past: "
            "give a later time, or leave --at out to start now"
        )
    tag_name = clean_tag(tag) if tag else None
    with transaction(app.engine) as session:
        query = (
            select(m.Subscriber.id)
            .where(m.Subscriber.status == m.SubscriberStatus.ACTIVE)
            .order_by(m.Subscriber.id)
        )
        if tag_name:
            query = query.join(m.SubscriberTag, m.SubscriberTag.subscriber_id == m.Subscriber.id).where(
                m.SubscriberTag.tag == tag_name
            )
        ids = list(session.scalars(query))
        enrolled = enroll_in_campaign(session, series, ids, moment)
        state = _state(session, series.slug, now)
        state.started_at = moment if state.started_at is None else min(state.started_at, moment)
        state.updated_at = now
        paused = bool(state.paused)
    return StartResult(series.slug, moment, len(ids), enrolled, paused)


def pause(app: SeriesStore, campaign: str, now: datetime) -> bool:
    """Hold the campaign. Returns False if it was already paused."""
    return _set_paused(app, campaign, True, now)


def resume(app: SeriesStore, campaign: str, now: datetime) -> bool:
    """Release a paused campaign. Returns False if it was not paused."""
    return _set_paused(app, campaign, False, now)


def _set_paused(app: SeriesStore, campaign: str, paused: bool, now: datetime) -> bool:
    series = _campaign(app, campaign)
    with transaction(app.engine) as session:
        state = _state(session, series.slug, now)
        if bool(state.paused) == paused:
            return False
        state.paused = paused
        state.updated_at = now
        return True


def is_paused(app: SeriesStore, campaign: str) -> bool:
    with reading(app.engine) as session:
        state = session.get(m.CampaignState, campaign)
        return bool(state is not None and state.paused)
