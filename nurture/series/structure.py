"""A series' shape as the owner changes it in the console: the order of its emails and their
delays, adding and removing an email, a new series, and throwing the draft away.

Each change rewrites campaign.yaml (and the email files it names): the draft. Nothing
goes out until the series is published, with the plan that says what changes for whom
(nurture.series.plan and publish), exactly as for an edit of an email's text.

campaign.yaml is written whole, in one step: the comment lines at its top are kept,
comments elsewhere are not (the console is then where the series is read). Steps keep
their keys, so a moved email stays the same email for everyone; a new email gets a key
no version of the series has used, so nobody is taken to have had it already.

A series made here carries a note file (NEW_SERIES) until it is first published: without
it, the sending pass would publish the starter text as version 1 the first time it ran
(nurture.series.catalog publishes any folder it has never seen).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from nurture.config import Config
from nurture.content.approved import text_from_stored
from nurture.content.campaigns import NEWSLETTERS_DIR, CampaignFile, StepRef
from nurture.errors import ContentError, InputError
from nurture.series.catalog import NEW_SERIES, SeriesStore
from nurture.series.versions import Snapshot
from nurture.store import models as m
from nurture.store.db import reading
from nurture.yaml_lines import OwnerYamlError, read_owner_yaml

NEW_SERIES_NOTE = (
    "This series was made in the owner console and has not been published yet.\n"
    "Nothing of it is sent until it is (this file is then removed).\n"
)
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
MAX_DELAY = 365
STARTER = (
    "---\nsubject: {subject}\npreheader: One line that shows beside the subject in the inbox.\n---\n"
    "Write this email here. Leave an empty line between paragraphs.\n"
)


@dataclass(frozen=True)
class Shape:
    """campaign.yaml as read: its top comment lines and its content."""

    header: list[str]
    spec: CampaignFile


def is_new_series(folder: Path) -> bool:
    """Made in the console and never published: the sending pass leaves it alone."""
    return (folder / NEW_SERIES).is_file()


def _folder(config: Config, slug: str) -> Path:
    folder = config.campaigns_dir / slug
    if not SLUG.match(slug) or slug == NEWSLETTERS_DIR or not (folder / "campaign.yaml").is_file():
        raise InputError(f"there is no series {slug!r}")
    return folder


def read_shape(folder: Path) -> Shape:
    path = folder / "campaign.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        data = read_owner_yaml(text).data
        spec = CampaignFile.model_validate(data)
    except (OSError, UnicodeDecodeError, OwnerYamlError, ValueError):
        # A hand edit broke it: the console changes nothing until the file is fixed.
        raise ContentError(
            "the series' settings file has a mistake made outside the console, so the series "
            "cannot be changed here until whoever edited it fixes it"
        ) from None
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    return Shape(header, spec)


def _quoted(text: str) -> str:
    # JSON's string syntax is YAML's double-quoted scalar: any title survives the round trip.
    return json.dumps(text, ensure_ascii=False)


def write_shape(folder: Path, shape: Shape) -> None:
    spec = shape.spec
    lines = [*shape.header, f"title: {_quoted(spec.title)}"]
    if spec.description:
        lines.append(f"description: {_quoted(spec.description)}")
    lines.append(f"trigger: {spec.trigger}")
    lines.append(f"stop_on_tags: [{', '.join(_quoted(tag) for tag in spec.stop_on_tags)}]")
    lines.append("steps:")
    for ref in spec.steps:
        lines.append(f"  - file: {_quoted(ref.file)}")
        lines.append(f"    delay_days: {ref.delay_days:g}")
        if ref.key is not None:
            lines.append(f"    key: {_quoted(ref.key)}")
    _write(folder / "campaign.yaml", "\n".join(lines) + "\n")


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def _key(ref: StepRef) -> str:
    return ref.key or Path(ref.file).stem


def _delay(raw: str, number: int) -> float:
    try:
        days = float(raw.strip().replace(",", "."))
    except ValueError:
        raise InputError(f"email {number}: the delay must be a number of days, like 3 or 0.5") from None
    if not 0 <= days <= MAX_DELAY:
        raise InputError(f"email {number}: the delay must be from 0 to {MAX_DELAY} days")
    return days


def reshape(
    config: Config,
    slug: str,
    delays: dict[str, str],
    *,
    move: tuple[str, int] | None = None,
    remove: str | None = None,
) -> None:
    """Set each email's delay (by key, as typed), then move one email by `move` = (key, -1 or +1)
    places, or remove one. InputError, with nothing written, on a bad value."""
    folder = _folder(config, slug)
    shape = read_shape(folder)
    steps = [
        ref.model_copy(update={"delay_days": _delay(delays[_key(ref)], number)})
        if _key(ref) in delays
        else ref
        for number, ref in enumerate(shape.spec.steps, start=1)
    ]
    keys = [_key(ref) for ref in steps]
    gone: StepRef | None = None
    if move is not None:
        key, by = move
        if key not in keys:
            raise InputError("that email is no longer in the series: reload the page")
        index = keys.index(key)
        target = index + by
        if 0 <= target < len(steps):
            steps[index], steps[target] = steps[target], steps[index]
    if remove is not None:
        if remove not in keys:
            raise InputError("that email is no longer in the series: reload the page")
        if len(steps) == 1:
            raise InputError("a series needs at least one email: add another before removing this one")
        gone = steps.pop(keys.index(remove))
    write_shape(folder, Shape(shape.header, shape.spec.model_copy(update={"steps": steps})))
    if gone is not None and all(ref.file != gone.file for ref in steps):
        (folder / gone.file).unlink(missing_ok=True)


def used_keys(app: SeriesStore, slug: str) -> set[str]:
    """Every key any published version of the series has had."""
    with reading(app.engine) as session:
        snapshots = session.scalars(select(m.SeriesVersion.snapshot).where(m.SeriesVersion.campaign == slug))
        return {str(item["key"]) for snapshot in snapshots for item in snapshot.get("steps", [])}


def _slugified(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].strip("-") or "email"


def add_email(app: SeriesStore, slug: str, subject: str, delay: str) -> int:
    """Add an email at the end of the series, with `subject` and a starter text; returns its number."""
    folder = _folder(app.config, slug)
    shape = read_shape(folder)
    subject = " ".join(subject.split())
    if not subject:
        raise InputError("give the new email a subject (you can change it later)")
    if len(subject) > 78:
        raise InputError("keep the subject under 78 characters (mail apps cut longer ones)")
    number = len(shape.spec.steps) + 1
    days = _delay(delay, number)
    taken = used_keys(app, slug) | {_key(ref) for ref in shape.spec.steps}
    stem = f"{number:02d}-{_slugified(subject)}"
    candidate, tries = stem, 1
    while candidate in taken or (folder / f"{candidate}.md").exists():
        tries += 1
        candidate = f"{stem}-{tries}"
    _write(folder / f"{candidate}.md", STARTER.format(subject=_quoted(subject)))
    steps = [*shape.spec.steps, StepRef(file=f"{candidate}.md", delay_days=days)]
    write_shape(folder, Shape(shape.header, shape.spec.model_copy(update={"steps": steps})))
    return number


def create_series(app: SeriesStore, slug: str, title: str, trigger: str, subject: str) -> str:
    """A new series folder with one starter email, not sent until published. Returns its slug."""
    slug = slug.strip().lower()
    title = " ".join(title.split())
    if not SLUG.match(slug) or slug == NEWSLETTERS_DIR:
        raise InputError(
            "the short name may hold only small letters, digits and dashes (for example after-a-workshop)"
        )
    if not title:
        raise InputError("give the series a title")
    if trigger not in ("confirmed", "manual"):
        raise InputError("choose when people start the series")
    folder = app.config.campaigns_dir / slug
    if folder.exists() or used_keys(app, slug):
        raise InputError(f"there is already a series called {slug}: choose another short name")
    subject = " ".join(subject.split()) or "A first email"
    spec = CampaignFile.model_validate(
        {
            "title": title,
            "trigger": trigger,
            "stop_on_tags": ["booked"],
            "steps": [{"file": "01-welcome.md", "delay_days": 0}],
        }
    )
    folder.mkdir(parents=True)
    try:
        (folder / NEW_SERIES).write_text(NEW_SERIES_NOTE, encoding="utf-8")
        _write(folder / "01-welcome.md", STARTER.format(subject=_quoted(subject)))
        write_shape(folder, Shape([], spec))
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return slug


def discard_draft(app: SeriesStore, slug: str, snapshot: Snapshot | None) -> None:
    """Put the files back as the published version `snapshot` has them (the draft's own emails
    are deleted). A series never published, made here, is removed."""
    folder = app.config.campaigns_dir / slug
    if not SLUG.match(slug) or slug == NEWSLETTERS_DIR or not folder.is_dir():
        raise InputError(f"there is no series {slug!r}")
    if snapshot is None:
        if not is_new_series(folder):
            raise InputError(
                "this series has never been published, and was not made here: nothing to go back to"
            )
        shutil.rmtree(folder)
        return
    try:
        draft = read_shape(folder)
        header, draft_files = draft.header, {ref.file for ref in draft.spec.steps}
    except ContentError:
        header, draft_files = [], set()
    for item in snapshot["steps"]:
        _write(folder / str(item["file"]), text_from_stored(dict(item["content"])))
    steps = [
        StepRef(
            file=str(item["file"]),
            delay_days=float(item["delay_days"]),
            key=None if str(item["key"]) == Path(str(item["file"])).stem else str(item["key"]),
        )
        for item in snapshot["steps"]
    ]
    spec = CampaignFile.model_validate(
        {
            "title": snapshot["title"],
            "description": snapshot.get("description", ""),
            "trigger": snapshot["trigger"],
            "stop_on_tags": list(snapshot.get("stop_on_tags", [])),
            "steps": steps,
        }
    )
    write_shape(folder, Shape(header, spec))
    # The emails only the draft had (added since publishing) go with it.
    for name in draft_files - {ref.file for ref in steps}:
        if "/" not in name and name.endswith(".md"):
            (folder / name).unlink(missing_ok=True)
