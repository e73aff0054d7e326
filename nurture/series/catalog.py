"""The published versions of every series, read from the store: what the sending pass sends.

The files in campaigns/ are a draft once a series has a version: the pass, the
enrollments and the stats read the latest published version instead
(`nurture campaign publish` makes a new one). A series folder that has never been
published becomes version 1 automatically the first time it is used, as it is.

Creating version 1 also gives rows from before series versions their keys: the
migration marked each old series delivery with the placeholder key "#<position>";
here each becomes the key of the step at that position in version 1, and
enrollments get their next step's key and version the same way.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.config import Config
from nurture.content.campaigns import NEWSLETTERS_DIR, Campaign, load_campaign
from nurture.errors import ContentError
from nurture.series.versions import Snapshot, campaign_from_snapshot, snapshot_of
from nurture.store import models as m
from nurture.store.db import reading, transaction

log = logging.getLogger(__name__)

LEGACY_KEY_PREFIX = "#"  # see the migration 0002v
# A series made in the console carries this file until it is first published: the folder
# is a draft, not a series to publish as it is (nurture.series.structure).
NEW_SERIES = ".unpublished"


def latest_numbers(session: Session) -> dict[str, int]:
    """Campaign slug -> its latest published version number."""
    query = select(m.SeriesVersion.campaign, func.max(m.SeriesVersion.version)).group_by(
        m.SeriesVersion.campaign
    )
    return {slug: int(number) for slug, number in session.execute(query)}


def stored_version(session: Session, slug: str, number: int) -> Snapshot | None:
    row = session.scalar(
        select(m.SeriesVersion.snapshot).where(
            m.SeriesVersion.campaign == slug, m.SeriesVersion.version == number
        )
    )
    return None if row is None else dict(row)


def insert_version(session: Session, slug: str, number: int, snapshot: Snapshot, now: datetime) -> None:
    session.add(m.SeriesVersion(campaign=slug, version=number, published_at=now, snapshot=snapshot))
    session.flush()
    if number == 1:
        adopt_legacy_rows(session, slug, [item["key"] for item in snapshot["steps"]])


def adopt_legacy_rows(session: Session, slug: str, keys: list[str]) -> None:
    """Give this series' rows from before versions the keys of version 1, by position."""
    deliveries = m.Delivery.__table__
    enrollments = m.Enrollment.__table__
    for position, key in enumerate(keys, start=1):
        session.execute(
            update(deliveries)
            .where(deliveries.c.stream == slug, deliveries.c.step_key == f"{LEGACY_KEY_PREFIX}{position}")
            .values(step_key=key, series_version=1)
        )
        session.execute(
            update(enrollments)
            .where(
                enrollments.c.campaign == slug,
                enrollments.c.version.is_(None),
                enrollments.c.next_step == position,
            )
            .values(next_step_key=key, version=1)
        )
    # Past the last step: nothing left to send (the pass completes them).
    session.execute(
        update(enrollments)
        .where(enrollments.c.campaign == slug, enrollments.c.version.is_(None))
        .values(version=1)
    )


def publish_first_version(bind: Engine | Connection, campaign: Campaign, now: datetime) -> bool:
    """Store the files of a series never published as its version 1. False if another process did first."""
    try:
        with transaction(bind) as session:
            if (
                session.scalar(
                    select(m.SeriesVersion.id).where(m.SeriesVersion.campaign == campaign.slug).limit(1)
                )
                is not None
            ):
                return False
            insert_version(session, campaign.slug, 1, snapshot_of(campaign), now)
    except IntegrityError:
        return False  # a concurrent process created it: theirs is the same files
    return True


class SeriesCatalog:
    """The latest published version of each series, loaded from the store and kept.

    `current()` answers from memory; `refresh()` asks the store which versions are
    the latest (one small query) and loads only what is new, so a long-running
    `nurture run` picks up a publish at its next pass.
    """

    def __init__(self, campaigns_dir: Path) -> None:
        self.campaigns_dir = campaigns_dir
        self._versions: dict[tuple[str, int], Campaign] = {}
        self._current: dict[str, Campaign] | None = None

    def current(self, bind: Engine | Connection) -> dict[str, Campaign]:
        if self._current is None:
            return self.refresh(bind)
        return self._current

    def forget(self) -> None:
        """Re-read the store at the next `current()` (after this process publishes)."""
        self._current = None

    def refresh(
        self, bind: Engine | Connection, now: datetime | None = None, *, create: bool = True
    ) -> dict[str, Campaign]:
        """The latest versions as the store has them now. `create=False` only reads: safe inside a
        write transaction (a series folder never published is then left for the next refresh)."""
        with reading(bind) as session:
            latest = latest_numbers(session)
        created = False
        for folder in self._unpublished_folders(latest) if create else []:
            campaign = self._load_draft(folder)
            if campaign is not None:
                created = publish_first_version(bind, campaign, now or datetime.now(UTC)) or created
        if created:
            with reading(bind) as session:
                latest = latest_numbers(session)
        current = {}
        for slug, number in sorted(latest.items()):
            version = self.version(bind, slug, number)
            if version is not None:
                current[slug] = version
        self._current = current
        return current

    def version(self, bind: Engine | Connection, slug: str, number: int) -> Campaign | None:
        """Version `number` of `slug` as published (kept once loaded: a version never changes)."""
        found = self._versions.get((slug, number))
        if found is None:
            with reading(bind) as session:
                snapshot = stored_version(session, slug, number)
            if snapshot is None:
                return None
            found = self._versions[(slug, number)] = campaign_from_snapshot(
                slug, self.campaigns_dir / slug, number, snapshot
            )
        return found

    def _unpublished_folders(self, latest: dict[str, int]) -> list[Path]:
        if not self.campaigns_dir.is_dir():
            return []
        return [
            folder
            for folder in sorted(self.campaigns_dir.iterdir())
            if folder.is_dir()
            and folder.name != NEWSLETTERS_DIR
            and not folder.name.startswith(".")
            and folder.name not in latest
            and not (folder / NEW_SERIES).is_file()
        ]

    def _load_draft(self, folder: Path) -> Campaign | None:
        try:
            return load_campaign(folder)
        except ContentError as exc:
            # Never published and broken: nothing of it can go out until it is fixed;
            # `nurture check` names the problem. The other series carry on.
            log.warning("series %s is not used until its files load: %s", folder.name, exc)
            return None


class SeriesStore(Protocol):
    """What the series functions need of the App (`nurture.app.App` is one): the
    config, the store, and the published versions read from it. Nothing else: no
    transport, no renderer, so no series function can send or render by the way."""

    @property
    def config(self) -> Config: ...

    @property
    def engine(self) -> Engine | Connection: ...

    @property
    def catalog(self) -> SeriesCatalog: ...
