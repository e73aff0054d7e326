"""Provider events in one neutral vocabulary: stored SendGrid-era kinds are renamed by
migration 0007p (and back on downgrade), and every kind reads the same whoever sent it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from nurture.store import models as m
from nurture.store.db import make_engine
from nurture.store.migrate import upgrade
from tests.support.schema import downgrade

OLD_TO_NEW = {
    "processed": "accepted",
    "bounced": "bounced_hard",
    "blocked": "bounced_soft",
    "dropped": "rejected",
    "delivered": "delivered",
    "opened": "opened",
}


def test_migration_renames_stored_kinds_and_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'kinds.db'}")
    upgrade(engine, "0007r")
    with engine.begin() as connection:
        for number, old in enumerate(OLD_TO_NEW):
            connection.execute(
                text(
                    "INSERT INTO provider_events (provider, provider_event_id, kind, raw_event, "
                    "occurred_at, received_at) VALUES ('sendgrid', :id, :kind, :kind, "
                    "'2026-11-01 09:00:00', '2026-11-01 09:00:00')"
                ),
                {"id": f"e{number}", "kind": old},
            )

    def kinds() -> dict[str, str]:
        with engine.connect() as connection:
            return dict(connection.execute(text("SELECT raw_event, kind FROM provider_events")).all())

    upgrade(engine)
    assert kinds() == OLD_TO_NEW
    assert all(m.EventKind(kind) for kind in kinds().values())
    downgrade(engine, "0007r")
    assert kinds() == {old: old for old in OLD_TO_NEW}
    engine.dispose()


def test_old_names_read_as_neutral_kinds() -> None:
    for old, new in OLD_TO_NEW.items():
        assert m.EventKind.from_stored(old) == new
    assert m.EventKind.from_stored("something new") == m.EventKind.UNKNOWN
    # Code written against the old names compares with the neutral values.
    assert m.EventKind.DROPPED is m.EventKind.REJECTED
    assert m.EventKind.BOUNCED is m.EventKind.BOUNCED_HARD
