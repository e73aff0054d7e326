"""Reads do not take SQLite's write lock, so the owner's reports never hold up a send."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text

from nurture.store import models as m
from nurture.store.db import make_engine, reading
from nurture.store.migrate import upgrade


def test_a_read_runs_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    try:
        upgrade(engine)
        with engine.begin() as writer:  # BEGIN IMMEDIATE: a sending pass mid-claim holds the write lock
            writer.execute(
                text(
                    "INSERT INTO campaign_states (campaign, paused, updated_at) "
                    "VALUES ('x', 0, '2026-12-01 00:00:00')"
                )
            )
            with reading(engine) as session:
                # Under WAL a deferred reader sees the last committed state at once, without waiting.
                assert session.scalar(select(func.count()).select_from(m.CampaignState)) == 0
        with reading(engine) as session:
            assert session.scalar(select(func.count()).select_from(m.CampaignState)) == 1
    finally:
        engine.dispose()
