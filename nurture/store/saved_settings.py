"""The settings the owner saved in the console, as rows: read by every App, written by the
console's Settings page (nurture.practice_settings). What they mean, and how they combine
with config.yaml and the environment, is in nurture.config.overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from nurture.store import models as m
from nurture.store.db import reading


@dataclass(frozen=True)
class Saved:
    value: Any
    saved_at: datetime
    saved_by: str


def read_saved(bind: Engine | Connection) -> dict[str, Saved]:
    """Every saved setting by its dotted key (a handful of rows: read at every refresh)."""
    with reading(bind) as session:
        return {
            row.key: Saved(row.value, row.saved_at, row.saved_by)
            for row in session.scalars(select(m.SavedSetting))
        }


def save(session: Session, key: str, value: Any, now: datetime, by: str) -> None:
    row = session.get(m.SavedSetting, key)
    if row is None:
        session.add(m.SavedSetting(key=key, value=value, saved_at=now, saved_by=by))
    else:
        row.value, row.saved_at, row.saved_by = value, now, by


def forget(session: Session, key: str) -> bool:
    """Drop a saved setting (config.yaml's value counts again). False if none was saved."""
    row = session.get(m.SavedSetting, key)
    if row is None:
        return False
    session.delete(row)
    return True
