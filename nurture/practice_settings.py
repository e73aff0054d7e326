"""The practice's settings as the owner changes them in the console: what each one is now and
where that comes from, and saving a change (validated as a whole, audited, applied at once).

How saved values combine with config.yaml and the environment: nurture.config.overrides.
A value typed equal to config.yaml's is not kept: the file is the source again. A new
consent wording is kept under a new wording version (an earlier version with the same
words is used again), so each person's consent record keeps the words they saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.app import App
from nurture.config.overrides import EDITABLE, Editable, apply_saved, set_by_environment, value_at
from nurture.config.values import clock_time
from nurture.errors import InputError
from nurture.owners.audit import Actor, record
from nurture.store import models as m
from nurture.store import saved_settings
from nurture.store.db import transaction
from nurture.store.saved_settings import Saved

WORDING, VERSION = "consent.wording", "consent.version"
SHOWN_VALUES = ("time", "bool", "count", "zone")  # the audit names these values; the others may be addresses


class SettingsRefused(InputError):
    """Nothing was saved: `problems` says, per key, what to fix."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("nothing was saved: " + "; ".join(problems.values()))
        self.problems = problems


@dataclass(frozen=True)
class SettingView:
    spec: Editable
    value: Any  # in effect now
    file_value: Any  # from config.yaml (or the environment)
    saved: Saved | None  # the console's, when one is in effect
    environment: str | None  # the variable that fixes it on this server
    problem: str | None  # why the saved value is not used


def shown(value: Any) -> str:
    """A value as the owner reads and types it."""
    if value is None:
        return ""
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def settings_view(app: App) -> list[SettingView]:
    app.refresh_settings()
    base = app.file_config or app.config
    saved = saved_settings.read_saved(app.engine)
    problems = {problem.key: problem.reason for problem in app.settings_problems}
    views = []
    for spec in EDITABLE.values():
        if spec.kind == "hidden":
            continue
        in_effect = spec.key not in problems and set_by_environment(base, spec.key) is None
        views.append(
            SettingView(
                spec,
                value_at(app.config.settings, spec.key),
                value_at(base.settings, spec.key),
                saved.get(spec.key) if in_effect else None,
                set_by_environment(base, spec.key),
                problems.get(spec.key),
            )
        )
    return views


def _typed(spec: Editable, raw: str | None) -> Any:
    """The value of a form field, as config.yaml would hold it; ValueError says what to fix."""
    text = (raw or "").strip()
    if spec.kind == "bool":
        return raw is not None and raw != ""
    if spec.kind == "optional_address":
        return text or None
    if spec.kind == "multiline":
        return "\n".join(line.rstrip() for line in (raw or "").replace("\r\n", "\n").strip().split("\n"))
    if spec.kind == "time":
        return clock_time(text)
    if spec.kind == "count":
        if not text.isascii() or not text.isdigit():
            raise ValueError("write a whole number, like 1 or 2")
        return int(text)
    return text


def _stored(value: Any) -> Any:
    return f"{value:%H:%M}" if isinstance(value, time) else value


def _wording_version(session: Session, wording: str, file_version: str, now: datetime) -> str:
    """The version to keep `wording` under: an earlier one with these very words, else a new one."""
    known = dict(session.execute(select(m.ConsentWording.wording, m.ConsentWording.version)).all())
    if wording in known:
        return str(known[wording])
    taken = set(known.values()) | {file_version}
    stem = f"{now:%Y-%m-%d}-console"
    version = stem
    number = 1
    while version in taken:
        number += 1
        version = f"{stem}-{number}"
    session.add(m.ConsentWording(version=version, wording=wording, first_used_at=now))
    return version


def save_settings(app: App, submitted: Mapping[str, str | None], actor: Actor, now: datetime) -> list[str]:
    """Save what the Settings form sent (a missing checkbox is "no"). Returns the labels of the
    settings that changed. SettingsRefused, with nothing saved, when any value is wrong."""
    app.refresh_settings()
    base = app.file_config or app.config
    current = {key: item.value for key, item in saved_settings.read_saved(app.engine).items()}
    wanted = dict(current)
    problems: dict[str, str] = {}
    for spec in EDITABLE.values():
        if spec.kind == "hidden" or set_by_environment(base, spec.key) is not None:
            continue
        try:
            value = _typed(spec, submitted.get(spec.key))
        except ValueError as exc:
            problems[spec.key] = f"{spec.label}: {exc}"
            continue
        if value == value_at(base.settings, spec.key):
            wanted.pop(spec.key, None)
        else:
            wanted[spec.key] = _stored(value)
    if problems:
        raise SettingsRefused(problems)
    with transaction(app.engine) as session:
        wording = wanted.get(WORDING)
        if wording is None:
            wanted.pop(VERSION, None)
        elif wording != current.get(WORDING) or VERSION not in current:
            wanted[VERSION] = _wording_version(session, wording, base.consent.version, now)
        applied = apply_saved(base, wanted)
        if applied.problems:
            raise SettingsRefused(
                {problem.key: f"{problem.label}: {problem.reason}" for problem in applied.problems}
            )
        changed = sorted(key for key in wanted.keys() | current.keys() if wanted.get(key) != current.get(key))
        for key in changed:
            if key in wanted:
                saved_settings.save(session, key, wanted[key], now, actor.email)
            else:
                saved_settings.forget(session, key)
        labels = [EDITABLE[key].label for key in changed if EDITABLE[key].kind != "hidden"]
        if labels:
            record(session, actor, "changed settings", now, _detail(changed, wanted, base))
    app.refresh_settings()
    return labels


def _detail(changed: list[str], wanted: Mapping[str, Any], base: Any) -> str:
    parts = []
    for key in changed:
        spec = EDITABLE[key]
        if spec.kind == "hidden":
            continue
        value = wanted.get(key, value_at(base.settings, key))
        source = "" if key in wanted else " (the configuration file's)"
        parts.append(f"{spec.label}: {shown(value)}{source}" if spec.kind in SHOWN_VALUES else spec.label)
    return "; ".join(parts)


def reset_setting(app: App, key: str, actor: Actor, now: datetime) -> bool:
    """Use config.yaml's value for `key` again. False if the console had not changed it."""
    spec = EDITABLE.get(key)
    if spec is None or spec.kind == "hidden":
        raise InputError("there is no such setting")
    keys = (WORDING, VERSION) if key == WORDING else (key,)
    with transaction(app.engine) as session:
        dropped = [saved_settings.forget(session, name) for name in keys]
        if dropped[0]:
            record(session, actor, "reset a setting", now, f"{spec.label}: the configuration file's value")
    app.refresh_settings()
    return dropped[0]
