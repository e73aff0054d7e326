"""Series versions as data: the snapshot kept when a series is published, the
campaign back from it, and what changed between two of them.

No database here. A snapshot is plain JSON: the campaign.yaml settings and, per
step in order, its key, file, delay and the email as approved
(`nurture.content.approved.stored_content`). Two snapshots are compared by step
key, so a renamed file that keeps its key is the same email, and one that does
not is a removed email plus an added one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nurture.content.approved import source_from_stored, stored_content
from nurture.content.campaigns import Campaign, Step

Snapshot = dict[str, Any]
ChangeKind = Literal["added", "removed", "moved", "edited", "renamed", "delay"]


def snapshot_of(campaign: Campaign) -> Snapshot:
    """What is kept of a series when it is published."""
    return {
        "title": campaign.title,
        "description": campaign.description,
        "trigger": campaign.trigger,
        "stop_on_tags": list(campaign.stop_on_tags),
        "steps": [
            {
                "key": step.step_key,
                "file": step.email.path.name,
                "delay_days": step.delay_days,
                "content": stored_content(step.email),
            }
            for step in campaign.steps
        ],
    }


def campaign_from_snapshot(slug: str, folder: Path, version: int, snapshot: Snapshot) -> Campaign:
    """The published series as a Campaign, built from the store alone (no file is read)."""
    steps = tuple(
        Step(
            number,
            Path(item["file"]).stem,
            float(item["delay_days"]),
            source_from_stored(str(folder / item["file"]), item["content"]),
            item["key"],
        )
        for number, item in enumerate(snapshot["steps"], start=1)
    )
    return Campaign(
        slug=slug,
        path=folder,
        title=snapshot["title"],
        description=snapshot.get("description", ""),
        trigger=snapshot["trigger"],
        stop_on_tags=tuple(snapshot.get("stop_on_tags", ())),
        steps=steps,
        version=version,
    )


def step_keys(snapshot: Snapshot) -> list[str]:
    return [item["key"] for item in snapshot["steps"]]


def subject_of(item: dict[str, Any]) -> str:
    return str(item["content"]["front"]["subject"])


def _same_email(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(
        a["content"]["front"] == b["content"]["front"] and a["content"]["body"] == b["content"]["body"]
    )


def _longest_common_order(old: list[str], new: list[str]) -> set[str]:
    """Keys of the longest subsequence common to both orders: the steps that did not move."""
    lengths = [[0] * (len(new) + 1) for _ in range(len(old) + 1)]
    for i in range(len(old) - 1, -1, -1):
        for j in range(len(new) - 1, -1, -1):
            lengths[i][j] = (
                lengths[i + 1][j + 1] + 1 if old[i] == new[j] else max(lengths[i + 1][j], lengths[i][j + 1])
            )
    kept: set[str] = set()
    i = j = 0
    while i < len(old) and j < len(new):
        if old[i] == new[j]:
            kept.add(old[i])
            i, j = i + 1, j + 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            i += 1
        else:
            j += 1
    return kept


@dataclass(frozen=True)
class StepChange:
    kind: ChangeKind
    key: str
    subject: str  # the subject in the new version (the old one for a removed step)
    old_position: int | None  # 1-based; None when added
    new_position: int | None  # 1-based; None when removed
    detail: str  # in the owner's words: what changed


@dataclass(frozen=True)
class SeriesDiff:
    slug: str
    old_version: int | None  # None: nothing published yet
    changes: list[StepChange] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # title, trigger, stop_on_tags changes

    @property
    def empty(self) -> bool:
        return not self.changes and not self.settings

    def of_kind(self, kind: ChangeKind) -> list[StepChange]:
        return [change for change in self.changes if change.kind == kind]


def diff_snapshots(slug: str, old_version: int | None, old: Snapshot | None, new: Snapshot) -> SeriesDiff:
    """What publishing `new` changes against `old` (the published version), step by step."""
    if old is None:
        first = [
            StepChange(
                "added",
                item["key"],
                subject_of(item),
                None,
                position,
                f"{item['file']}, {item['delay_days']:g} day(s) after the previous email",
            )
            for position, item in enumerate(new["steps"], start=1)
        ]
        return SeriesDiff(slug, None, first)
    old_steps = {item["key"]: (position, item) for position, item in enumerate(old["steps"], start=1)}
    new_steps = {item["key"]: (position, item) for position, item in enumerate(new["steps"], start=1)}
    kept_old = [key for key in step_keys(old) if key in new_steps]
    kept_new = [key for key in step_keys(new) if key in old_steps]
    unmoved = _longest_common_order(kept_old, kept_new)
    changes: list[StepChange] = []
    removed = [key for key in step_keys(old) if key not in new_steps]
    for key in removed:
        position, item = old_steps[key]
        changes.append(
            StepChange(
                "removed", key, subject_of(item), position, None, f"was step {position} ({item['file']})"
            )
        )
    for key in step_keys(new):
        position, item = new_steps[key]
        if key not in old_steps:
            detail = f"{item['file']}, {item['delay_days']:g} day(s) after the previous email"
            twin = next((other for other in removed if _same_email(old_steps[other][1], item)), None)
            if twin is not None:
                detail += (
                    f"; the same email as removed {twin!r}: a new key, so people who had it get it again. "
                    f"To keep it one email, add `key: {twin}` to this step"
                )
            changes.append(StepChange("added", key, subject_of(item), None, position, detail))
            continue
        old_position, old_item = old_steps[key]
        if key not in unmoved:
            changes.append(
                StepChange(
                    "moved",
                    key,
                    subject_of(item),
                    old_position,
                    position,
                    f"from step {old_position} to step {position}",
                )
            )
        if old_item["file"] != item["file"]:
            changes.append(
                StepChange(
                    "renamed",
                    key,
                    subject_of(item),
                    old_position,
                    position,
                    f"file {old_item['file']} -> {item['file']}, key kept",
                )
            )
        if not _same_email(old_item, item):
            if subject_of(old_item) != subject_of(item):
                what = f"subject {subject_of(old_item)!r} -> {subject_of(item)!r}"
            else:
                what = "text changed"
            changes.append(StepChange("edited", key, subject_of(item), old_position, position, what))
        if float(old_item["delay_days"]) != float(item["delay_days"]):
            changes.append(
                StepChange(
                    "delay",
                    key,
                    subject_of(item),
                    old_position,
                    position,
                    f"delay {old_item['delay_days']:g} -> {item['delay_days']:g} day(s)",
                )
            )
    settings = [
        f"{name}: {old.get(name)!r} -> {new.get(name)!r}"
        for name in ("title", "description", "trigger", "stop_on_tags")
        if old.get(name) != new.get(name)
    ]
    return SeriesDiff(slug, old_version, changes, settings)
