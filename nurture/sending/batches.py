"""Render: the claims of one email, checked once more and built into a batch for the transport.

Consent and the reader's choices (series or newsletter off, a pause, at most one a
week) and a series' stop tags were checked when claiming; they are checked again here,
right before the transport, since a reader may have changed them in between. What the
check turns away is given back to the pass to record (skipped) or release (held).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from nurture import links
from nurture.config import Config
from nurture.content.approved import source_from_stored
from nurture.content.campaigns import Campaign
from nurture.content.prepared import PreparedEmail
from nurture.content.rendering import Renderer
from nurture.errors import NotFound, NurtureError
from nurture.providers.base import Batch
from nurture.sending.claims import Claim
from nurture.sending.eligibility import recheck
from nurture.sending.streams import REPERMISSION_STREAM, newsletter_stream
from nurture.series.catalog import SeriesCatalog
from nurture.store import models as m
from nurture.store.db import reading

NOT_SUBSCRIBED = "skipped: no longer subscribed"
STOP_TAG = "skipped: has a stop tag of this series"
TURNED_OFF = "skipped: the reader turned these emails off or paused them"
CANCELLED = "skipped: the newsletter was cancelled"


@dataclass
class Built:
    """One group of claims after the last check: the batch (None: nothing of it goes) and its claims."""

    batch: Batch | None = None
    ready: list[Claim] = field(default_factory=list)
    skipped: dict[str, list[Claim]] = field(default_factory=dict)  # error -> claims, recorded as skipped
    held: list[Claim] = field(default_factory=list)  # paused or at the limit since the claim: released
    unusable: list[tuple[Claim, str]] = field(default_factory=list)  # (claim, error), recorded as failed


def groups_of(claims: Sequence[Claim], batch_size: int) -> Iterable[list[Claim]]:
    """The claims by email (stream, version, step), each cut into batches of at most batch_size."""
    groups: dict[tuple[str, int | None, str], list[Claim]] = {}
    for claim in claims:
        groups.setdefault((claim.stream, claim.series_version, claim.step_key), []).append(claim)
    return [
        group[start : start + batch_size]
        for group in groups.values()
        for start in range(0, len(group), batch_size)
    ]


def _cancelled(session: Session, newsletter_id: int | None) -> bool:
    status = session.scalar(select(m.Newsletter.status).where(m.Newsletter.id == newsletter_id))
    return status == m.NewsletterStatus.CANCELLED


class BatchBuilder:
    """Builds the batches of one pass: emails are prepared once each and kept for the pass."""

    def __init__(
        self,
        config: Config,
        engine: Engine | Connection,
        renderer: Renderer,
        catalog: SeriesCatalog,
        campaigns: dict[str, Campaign],
        now: datetime,
    ) -> None:
        self.config = config
        self.engine = engine
        self.renderer = renderer
        self.catalog = catalog
        self.campaigns = campaigns
        self.now = now
        self._newsletters: dict[int, PreparedEmail] = {}  # stored newsletters never change once scheduled

    def build(self, group: list[Claim]) -> Built:
        """Check consent, the reader's choices (and a series' stop tags) once more, then build
        the batch of those still wanting this email."""
        ids = [claim.subscriber_id for claim in group]
        stream = group[0].stream
        kind = (
            "newsletter"
            if group[0].newsletter_id is not None
            else "ask"
            if stream == REPERMISSION_STREAM
            else "series"
        )
        # A goal tag ("booked") added since the claim ends the series now, not after one more email.
        campaign = self.campaigns.get(stream) if kind == "series" else None
        with reading(self.engine) as session:
            if kind == "newsletter" and _cancelled(session, group[0].newsletter_id):
                # Cancelled since the claim: nobody else gets it, only what is in flight goes.
                return Built(skipped={CANCELLED: group})
            found = recheck(
                session,
                ids,
                campaign.stop_on_tags if campaign is not None else (),
                now=self.now,
                kind=kind,
                delivery_ids=[claim.delivery_id for claim in group],
            )
        built = Built()
        active = found.active
        if len(active) == len(group) and not (found.tagged or found.declined or found.held):
            ready = group  # the usual case: everyone still subscribed, nothing changed since the claim
        else:
            skipped = {
                NOT_SUBSCRIBED: [c for c in group if c.subscriber_id not in active],
                STOP_TAG: [c for c in group if c.subscriber_id in found.tagged],
                TURNED_OFF: [
                    c
                    for c in group
                    if c.subscriber_id in found.declined and c.subscriber_id not in found.tagged
                ],
            }
            built.skipped = {error: claims for error, claims in skipped.items() if claims}
            # Paused, series off, or at the weekly limit since the claim: given back, sent later.
            built.held = [
                c
                for c in group
                if c.subscriber_id in found.held
                and c.subscriber_id in active
                and c.subscriber_id not in found.tagged
                and c.subscriber_id not in found.declined
            ]
            ready = [
                claim
                for claim in group
                if claim.subscriber_id in active
                and claim.subscriber_id not in found.tagged
                and claim.subscriber_id not in found.declined
                and claim.subscriber_id not in found.held
            ]
            if not ready:
                return built
        prepared = self.prepared(ready[0])
        envelopes = []
        seen: set[str] = set()
        step = ready[0].step  # one email: a group shares stream, version and step
        unsubscribe_url = links.unsubscribe_urls(self.config, stream)
        preferences_url = links.preferences_urls(self.config)
        envelope_for = prepared.envelope_for
        for claim in ready:
            delivery, subscriber_id, email, first_name = claim[:4]
            key = email.casefold()
            if key in seen:  # cannot happen with unique addresses; never put one twice in a request
                continue
            seen.add(key)
            delivery_id = str(delivery)
            try:
                # The provider gets an opaque key only, random and never reused (a row id may
                # be): events find the delivery, and so stream and step, through it.
                envelopes.append(
                    envelope_for(
                        delivery_id,
                        email,
                        first_name,
                        unsubscribe_url(subscriber_id),
                        {"delivery_id": claim.message_key or delivery_id},
                        stream,
                        step,
                        preferences_url=preferences_url(subscriber_id),
                    )
                )
            except NurtureError as exc:
                # One unusable recipient (say, an address that can no longer be written
                # into a header) fails alone; the rest of the batch still goes out.
                built.unusable.append((claim, f"not sent: {exc}"))
        if built.unusable:
            failed = {id(claim) for claim, _ in built.unusable}
            ready = [claim for claim in ready if id(claim) not in failed]
        if envelopes:
            built.batch = replace(prepared.batch(envelopes), sent_at=self.now)
            built.ready = ready
        return built

    def prepared(self, claim: Claim) -> PreparedEmail:
        if claim.stream == REPERMISSION_STREAM:
            return self.renderer.prepare_repermission()
        if claim.newsletter_id is None:
            # The version the claim was taken from, which a publish since then does not change.
            assert claim.series_version is not None  # every series claim names its version
            campaign = self.catalog.version(self.engine, claim.stream, claim.series_version)
            step = campaign.by_key(claim.step_key) if campaign is not None else None
            if campaign is None or step is None:
                raise NotFound(
                    f"{claim.stream}: version {claim.series_version} has no step {claim.step_key!r}"
                )
            return self.renderer.prepare_step(campaign, step)
        prepared = self._newsletters.get(claim.newsletter_id)
        if prepared is None:
            prepared = self._newsletters[claim.newsletter_id] = prepare_stored_newsletter(
                self.engine, self.renderer, claim.newsletter_id
            )
        return prepared


def prepare_stored_newsletter(
    engine: Engine | Connection, renderer: Renderer, newsletter_id: int
) -> PreparedEmail:
    """The newsletter as approved, compiled once per process (the renderer caches by name)."""
    with reading(engine) as session:
        newsletter = session.get(m.Newsletter, newsletter_id)
        if newsletter is None:
            raise NotFound(f"newsletter {newsletter_id} does not exist")
        source = source_from_stored(newsletter.source_file, newsletter.content)
    return renderer.prepare_newsletter(source, name=newsletter_stream(newsletter_id))
