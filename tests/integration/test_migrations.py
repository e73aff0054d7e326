"""The Alembic migrations produce exactly the models' schema (SQLite here, with the
backend-neutral tests on PostgreSQL too), downgrade cleanly, and re-run as no-ops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from nurture.store.db import make_engine
from nurture.store.migrate import current_revision, ensure_schema, head_revision, upgrade
from tests.support.factories import SECRET, write_project
from tests.support.schema import (
    HEAD,
    MODEL_TABLES,
    assert_append_only,
    downgrade,
    downgrade_to_base,
    insert_consent_event,
    schema_diff,
    schema_snapshot,
    table_names,
    triggers,
    version_rows,
)


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file; PostgreSQL as well for the tests marked ON_BOTH_STORES."""
    if getattr(request, "param", "sqlite") == "postgres":
        engine = make_engine(str(request.getfixturevalue("postgres_url")))
        assert engine.dialect.name == "postgresql"
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    yield engine
    engine.dispose()


# The backend-neutral tests: on SQLite and on PostgreSQL (whose own tests are in the
# migrations PostgreSQL module).
ON_BOTH_STORES = pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def test_upgrade_empty_database_matches_the_models(engine: Engine):
    assert table_names(engine) == set()
    assert current_revision(engine) is None

    upgrade(engine)

    assert head_revision(engine) == HEAD
    assert current_revision(engine) == HEAD
    assert table_names(engine) == MODEL_TABLES | {"alembic_version"}
    assert schema_diff(engine) == []
    assert triggers(engine) == [
        "consent_events_append_only",
        "owner_audit_no_delete",
        "owner_audit_no_update",
    ]


def test_the_comparison_does_see_differences(engine: Engine):
    """Guard against a comparison that finds nothing whatever the schema."""
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE subscribers ADD COLUMN shoe_size INTEGER"))
        connection.execute(text("DROP INDEX ix_subscribers_status"))
    diff = schema_diff(engine)
    kinds = sorted(entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff)
    assert kinds == ["add_index", "remove_column"]
    assert any(
        isinstance(entry, tuple) and entry[0] == "remove_column" and entry[3].name == "shoe_size"
        for entry in diff
    )


def test_sqlite_store_settings(engine: Engine):
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


@ON_BOTH_STORES
def test_consent_events_are_append_only(engine: Engine):
    upgrade(engine)
    insert_consent_event(engine)
    assert_append_only(engine)


def test_the_owner_audit_log_is_append_only(engine: Engine):
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO owner_audit (id, at, owner, action) "
                "VALUES (1, '2026-01-01 00:00:00', 'o@example.com', 'login')"
            )
        )
    for statement in (
        "UPDATE owner_audit SET action = 'nothing' WHERE id = 1",
        "DELETE FROM owner_audit WHERE id = 1",
    ):
        with pytest.raises(DBAPIError, match="owner_audit is append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT action FROM owner_audit")).scalars().all() == ["login"]


def test_downgrade_to_base_leaves_no_tables(engine: Engine):
    downgrade_to_base(engine)
    with engine.connect() as connection:
        leftovers = connection.execute(
            text(
                "SELECT type, name FROM sqlite_master "
                "WHERE name NOT LIKE 'sqlite_%' AND tbl_name != 'alembic_version'"
            )
        ).all()
    assert leftovers == []


@ON_BOTH_STORES
def test_upgrade_twice_is_a_no_op(engine: Engine):
    upgrade(engine)
    insert_consent_event(engine)
    before = schema_snapshot(engine)

    upgrade(engine)
    ensure_schema(engine)

    assert schema_snapshot(engine) == before
    assert version_rows(engine) == [HEAD]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 1


@ON_BOTH_STORES
def test_down_and_up_again_restores_the_schema_and_triggers(engine: Engine):
    upgrade(engine)
    first = schema_snapshot(engine)
    downgrade(engine)
    upgrade(engine)
    assert schema_snapshot(engine) == first
    assert schema_diff(engine) == []
    insert_consent_event(engine)
    assert_append_only(engine)


def test_db_upgrade_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nurture.cli.main import cli

    config = write_project(tmp_path, copy_content=False)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    result = CliRunner().invoke(cli, ["--config", str(config), "db", "upgrade"], prog_name="nurture")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"schema is at revision {HEAD}\n"
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    try:
        assert current_revision(engine) == HEAD
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_the_head_constant_is_alembics_head(tmp_path: Path) -> None:
    from nurture.store.db import make_engine
    from nurture.store.migrate import HEAD, head_revision

    engine = make_engine(f"sqlite:///{tmp_path / 'head.db'}")
    try:
        assert head_revision(engine) == HEAD, (
            "update HEAD in nurture/store/migrate.py with each new migration"
        )
    finally:
        engine.dispose()


def insert_subscriber_1(connection: Connection) -> None:
    """Subscriber 1, active, in the columns every revision from 0002v on has."""
    connection.execute(
        text(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, status_changed_at, "
            "confirm_nonce) VALUES (1, 'a@example.com', 'a@example.com', 'active', "
            "'2026-11-01 09:00:00', '2026-11-01 09:00:00', 0)"
        )
    )


@ON_BOTH_STORES
def test_upgrading_to_reader_choices_keeps_every_row_that_refers_to_a_subscriber(engine: Engine):
    """0007r adds columns to subscribers in place: a copy of the table (Alembic's batch mode on
    SQLite) would drop it, and with foreign keys on the drop cascades to every child row."""
    upgrade(engine, "0002v")
    with engine.begin() as connection:
        insert_subscriber_1(connection)
        connection.execute(
            text(
                "INSERT INTO enrollments "
                "(subscriber_id, campaign, next_step, status, enrolled_at, updated_at) "
                "VALUES (1, 'kap-intro', 2, 'active', '2026-11-01 09:00:00', '2026-11-01 09:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (subscriber_id, stream, step, step_key, status, claimed_at) "
                "VALUES (1, 'kap-intro', 1, '01-what-is-kap', 'sent', '2026-11-01 09:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, kind, occurred_at, recorded_at) "
                "VALUES (1, 'import', '2026-11-01 09:00:00', '2026-11-01 09:00:00')"
            )
        )

    def rows() -> tuple[int, int, int]:
        with engine.connect() as connection:
            return (
                connection.execute(text("SELECT count(*) FROM enrollments")).scalar_one(),
                connection.execute(text("SELECT count(*) FROM consent_events")).scalar_one(),
                connection.execute(
                    text("SELECT count(*) FROM deliveries WHERE subscriber_id = 1")
                ).scalar_one(),
            )

    upgrade(engine)
    assert rows() == (1, 1, 1)
    with engine.connect() as connection:
        choices = connection.execute(
            text("SELECT series_off, newsletter_off, frequency FROM subscribers")
        ).one()
    assert (bool(choices[0]), bool(choices[1]), choices[2]) == (False, False, "daily")
    downgrade(engine, "0002v")
    assert rows() == (1, 1, 1)


@ON_BOTH_STORES
def test_upgrading_to_event_bits_sets_each_delivery_the_kinds_of_its_stored_events(engine: Engine):
    """0007x: the Results count a delivery's bits instead of its events, so the events
    stored before it must be on the bits after it (and bits kept by the retention pass stay)."""
    upgrade(engine, "0007w")
    with engine.begin() as connection:
        insert_subscriber_1(connection)
        for number, retired in ((1, 0), (2, 0), (3, 16), (4, 0)):
            connection.execute(
                text(
                    "INSERT INTO deliveries (id, subscriber_id, stream, step, step_key, status, claimed_at,"
                    " retired_events) VALUES (:id, 1, 'kap-intro', :id, :key, 'sent',"
                    " '2026-11-01 09:00:00', :retired)"
                ),
                {"id": number, "key": f"s{number}", "retired": retired},
            )
        events = [
            (1, "accepted"),
            (1, "delivered"),
            (1, "opened"),
            (1, "opened"),
            (2, "bounced_soft"),
            (2, "clicked"),
            (3, "unsubscribed"),
            (None, "opened"),  # tied to no one: sets nothing
        ]
        for number, (delivery_id, kind) in enumerate(events):
            connection.execute(
                text(
                    "INSERT INTO provider_events (provider, provider_event_id, kind, raw_event, delivery_id,"
                    " occurred_at, received_at) VALUES ('sendgrid', :id, :kind, :kind, :delivery,"
                    " '2026-11-01 09:00:00', '2026-11-01 09:00:00')"
                ),
                {"id": f"e{number}", "kind": kind, "delivery": delivery_id},
            )

    def bits(column: str) -> dict[int, int]:
        with engine.connect() as connection:
            return dict(connection.execute(text(f"SELECT id, {column} FROM deliveries ORDER BY id")).all())

    upgrade(engine)
    # delivered 1, opened 2, clicked 4, bounced 8, complained 16, unsubscribed 32
    assert bits("event_bits") == {1: 1 | 2, 2: 8 | 4, 3: 16 | 32, 4: 0}
    downgrade(engine, "0007w")
    assert bits("retired_events") == {1: 1 | 2, 2: 8 | 4, 3: 16 | 32, 4: 0}
