"""Newsletters being written in the console: drafts, and scheduling one so that a refusal
changes nothing.

A draft is campaigns/newsletters/drafts/<name>.md (the newsletter list never reads that
folder). It is saved when the owner previews or sends herself a test copy. Reopening a
scheduled newsletter writes its approved content back to a draft, with a note beside it
(<name>.replaces) naming the newsletter it will replace; until it is scheduled again the
scheduled one goes out as it was.

Scheduling takes the text as typed: every check, and the store's checks against other
newsletters (the same content, the same name, the one it replaces still scheduled), come
first, in the transaction that stores it (nurture.newsletters.schedule). Only then is the
file campaigns/newsletters/<name>.md written and the draft removed. A refused schedule
leaves every file and row as it was.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.app import App
from nurture.config import Config
from nurture.content.approved import text_from_stored
from nurture.content.campaigns import NEWSLETTERS_DIR, email_from_text
from nurture.errors import ContentError, InputError, NotFound
from nurture.newsletters import NameTaken, NotScheduledAnyMore, schedule
from nurture.store import models as m
from nurture.store.db import reading

DRAFTS = "drafts"
REPLACES = ".replaces"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
MAX_SOURCE = 200_000


def clean_name(raw: str) -> str:
    name = raw.strip().lower().removesuffix(".md")
    if not NAME.match(name):
        raise InputError(
            "the name may hold only small letters, digits and dashes, "
            "starting with a letter or digit (for example 2026-12-winter-note)"
        )
    return name


def live_path(config: Config, name: str) -> Path:
    return config.campaigns_dir / NEWSLETTERS_DIR / f"{name}.md"


def draft_path(config: Config, name: str) -> Path:
    return config.campaigns_dir / NEWSLETTERS_DIR / DRAFTS / f"{name}.md"


def _note_path(config: Config, name: str) -> Path:
    return draft_path(config, name).with_suffix(REPLACES)


def write_text(path: Path, text: str) -> Path:
    """Replace the file at `path` with `text` in one step (a reader never sees half of it)."""
    if len(text) > MAX_SOURCE:
        raise InputError(f"the text is too long ({len(text):,} characters): keep it under {MAX_SOURCE:,}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    # Browsers send CRLF line ends from a textarea; the files use LF.
    temp.write_text(text.replace("\r\n", "\n"), encoding="utf-8")
    temp.replace(path)
    return path


def save_draft(config: Config, name: str, text: str) -> Path:
    return write_text(draft_path(config, name), text)


@dataclass(frozen=True)
class Draft:
    name: str
    text: str
    saved_at: datetime
    replaces: int | None  # the scheduled newsletter this one is an edit of

    @property
    def subject(self) -> str | None:
        try:
            return email_from_text(Path(f"{self.name}.md"), self.text).subject
        except ContentError:
            return None

    def age(self, now: datetime) -> timedelta:
        return max(now - self.saved_at, timedelta(0))


def read_draft(config: Config, name: str) -> Draft:
    path = draft_path(config, name)
    try:
        text = path.read_text(encoding="utf-8")
        saved_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        raise NotFound(f"there is no draft called {name}") from None
    except (OSError, UnicodeDecodeError):
        raise InputError(f"the draft {name} cannot be read") from None
    note = _note_path(config, name)
    replaces = None
    try:
        written = note.read_text(encoding="utf-8").strip()
        replaces = int(written) if written.isdigit() else None
    except FileNotFoundError:
        pass
    return Draft(name, text, saved_at, replaces)


def list_drafts(config: Config) -> list[Draft]:
    """Every newsletter draft, the most recently saved first."""
    folder = config.campaigns_dir / NEWSLETTERS_DIR / DRAFTS
    if not folder.is_dir():
        return []
    drafts = []
    for path in folder.glob("*.md"):
        if NAME.match(path.stem):
            try:
                drafts.append(read_draft(config, path.stem))
            except InputError:
                continue  # removed meanwhile, or not text: nothing the owner wrote here
    return sorted(drafts, key=lambda draft: draft.saved_at, reverse=True)


def discard_draft(config: Config, name: str) -> bool:
    """Remove a draft (and its note). False if there was none: someone was quicker."""
    _note_path(config, name).unlink(missing_ok=True)
    try:
        draft_path(config, name).unlink()
    except FileNotFoundError:
        return False
    return True


def _holder(app: App, path: Path) -> int | None:
    """The newsletter, not cancelled, whose file is `path`."""
    with reading(app.engine) as session:
        return session.scalar(
            select(m.Newsletter.id).where(
                m.Newsletter.source_file == str(path), m.Newsletter.status != m.NewsletterStatus.CANCELLED
            )
        )


def schedule_text(
    app: App,
    name: str,
    text: str,
    at_local: str,
    timezone_mode: str,
    now: datetime,
    *,
    replaces: int | None = None,
) -> int:
    """Schedule `text` as campaigns/newsletters/<name>.md (replacing newsletter `replaces`).

    Refused (an InputError, and nothing on disk or in the store changed) on any check
    finding, a time that has passed, a name another newsletter or file holds, the same
    content as another newsletter, or a `replaces` that is no longer scheduled."""
    live = live_path(app.config, name)
    if len(text) > MAX_SOURCE:
        raise InputError(f"the text is too long ({len(text):,} characters): keep it under {MAX_SOURCE:,}")
    if live.exists():
        holder = _holder(app, live)
        if replaces is None or holder != replaces:
            raise NameTaken(live, holder)
    newsletter_id = schedule(
        app, live, at_local, timezone_mode, now, text=text, replaces=replaces, new_file=True
    )
    # Stored: now the file, which says what was approved under this name.
    write_text(live, text)
    discard_draft(app.config, name)
    return newsletter_id


def reopen(app: App, newsletter_id: int) -> str:
    """Write a scheduled newsletter back to a draft for editing; returns the draft's name.
    It stays scheduled as it is until the edited version is scheduled in its place."""
    with reading(app.engine) as session:
        newsletter = session.get(m.Newsletter, newsletter_id)
        if newsletter is None or newsletter.status != m.NewsletterStatus.SCHEDULED:
            raise NotScheduledAnyMore(newsletter_id, newsletter.status if newsletter is not None else None)
        source_file, content = Path(newsletter.source_file), dict(newsletter.content)
    name = source_file.stem if NAME.match(source_file.stem) else f"newsletter-{newsletter_id}"
    save_draft(app.config, name, text_from_stored(content))
    _note_path(app.config, name).write_text(f"{newsletter_id}\n", encoding="utf-8")
    return name
