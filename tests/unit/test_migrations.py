"""The Alembic migrations produce exactly the models' schema (SQLite here; PostgreSQL in
tests/integration/test_migrations_postgres.py), downgrade cleanly, and re-run as no-ops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from nurture.store.db import make_engine
from nurture.store.migrate import alembic_config, current_revision, ensure_schema, head_revision, upgrade
from nurture.store.models import Base
from tests.support.factories import SECRET, write_project

HEAD = "0002v"
MODEL_TABLES = {table.name for table in Base.metadata.sorted_tables}


# ---------------------------------------------------------------- helpers shared with the PostgreSQL test


def schema_diff(engine: Engine) -> list[Any]:
    """Alembic's autogenerate comparison of the live schema against the models."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def downgrade(engine: Engine, revision: str = "base") -> None:
    command.downgrade(alembic_config(engine), revision)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    """Tables, columns, keys, indexes and triggers, in a comparable form."""
    inspector = inspect(engine)
    snapshot: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        snapshot[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in inspector.get_columns(name)],
            "pk": inspector.get_pk_constraint(name),
            "fks": sorted(repr(fk) for fk in inspector.get_foreign_keys(name)),
            "indexes": sorted(repr(ix) for ix in inspector.get_indexes(name)),
            "uniques": sorted(repr(uq) for uq in inspector.get_unique_constraints(name)),
        }
    snapshot["triggers"] = triggers(engine)
    return snapshot


def triggers(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")
            ).scalars()
        else:
            rows = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            ).scalars()
        return list(rows)


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def insert_consent_event(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscribers (id, email, email_key, status, created_at, status_changed_at, confirm_nonce) "
                "VALUES (1, 'a@example.com', 'a@example.com', 'active', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO consent_events (id, subscriber_id, kind, occurred_at, recorded_at) "
                "VALUES (1, 1, 'import', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )


def assert_append_only(engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="consent_events is append-only"):
        with engine.begin() as connection:
            connection.execute(text("UPDATE consent_events SET kind = 'confirm' WHERE id = 1"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT kind FROM consent_events WHERE id = 1")).scalar_one() == "import"
    # Erasure must stay possible.
    with engine.begin() as connection:
        assert connection.execute(text("DELETE FROM subscribers WHERE id = 1")).rowcount == 1
        assert connection.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 0  # cascaded


# ---------------------------------------------------------------- SQLite


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
    yield engine
    engine.dispose()


def test_upgrade_empty_database_matches_the_models(engine: Engine):
    assert table_names(engine) == set()
    assert current_revision(engine) is None

    upgrade(engine)

    assert head_revision(engine) == HEAD
    assert current_revision(engine) == HEAD
    assert table_names(engine) == MODEL_TABLES | {"alembic_version"}
    assert schema_diff(engine) == []
    assert triggers(engine) == ["consent_events_append_only", "owner_audit_no_delete", "owner_audit_no_update"]


def test_the_comparison_does_see_differences(engine: Engine):
    """Guard against a comparison that finds nothing whatever the schema."""
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE subscribers ADD COLUMN shoe_size INTEGER"))
        connection.execute(text("DROP INDEX ix_subscribers_status"))
    diff = schema_diff(engine)
    kinds = sorted(entry[0] if isinstance(entry, tuple) else entry[0][0] for entry in diff)
    assert kinds == ["add_index", "remove_column"]
    assert any(isinstance(entry, tuple) and entry[0] == "remove_column" and entry[3].name == "shoe_size" for entry in diff)


def test_sqlite_store_settings(engine: Engine):
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_consent_events_are_append_only(engine: Engine):
    upgrade(engine)
    insert_consent_event(engine)
    assert_append_only(engine)


def test_the_owner_audit_log_is_append_only(engine: Engine):
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO owner_audit (id, at, owner, action) VALUES (1, '2026-01-01 00:00:00', 'o@example.com', 'login')"))
    for statement in ("UPDATE owner_audit SET action = 'nothing' WHERE id = 1", "DELETE FROM owner_audit WHERE id = 1"):
        with pytest.raises(DBAPIError, match="owner_audit is append-only"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT action FROM owner_audit")).scalars().all() == ["login"]


def downgrade_to_base(engine: Engine) -> None:
    """Upgrade, downgrade to base, and check what every backend must show afterwards."""
    upgrade(engine)
    downgrade(engine)
    assert table_names(engine) <= {"alembic_version"}
    assert version_rows(engine) == []
    assert current_revision(engine) is None
    assert triggers(engine) == []


def test_downgrade_to_base_leaves_no_tables(engine: Engine):
    downgrade_to_base(engine)
    with engine.connect() as connection:
        leftovers = connection.execute(
            text("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND tbl_name != 'alembic_version'")
        ).all()
    assert leftovers == []


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
        assert head_revision(engine) == HEAD, "update HEAD in nurture/store/migrate.py with each new migration"
    finally:
        engine.dispose()
