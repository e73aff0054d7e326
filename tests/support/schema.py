"""The live schema of a store, read back to compare it with the models and across migrations."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from nurture.store.migrate import alembic_config, current_revision, upgrade
from nurture.store.models import Base

HEAD = "0007y"
MODEL_TABLES = {table.name for table in Base.metadata.sorted_tables}


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


def _index(index: Any) -> str:
    """An index as text; a partial index's WHERE clause by its SQL, not its object's address."""
    options = {key: str(value) for key, value in index.get("dialect_options", {}).items()}
    return repr({**index, "dialect_options": options})


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    """Tables, columns, keys, indexes and triggers, in a comparable form."""
    inspector = inspect(engine)
    snapshot: dict[str, Any] = {}
    for name in sorted(inspector.get_table_names()):
        snapshot[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(name)
            ],
            "pk": inspector.get_pk_constraint(name),
            "fks": sorted(repr(fk) for fk in inspector.get_foreign_keys(name)),
            "indexes": sorted(_index(ix) for ix in inspector.get_indexes(name)),
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
                "INSERT INTO subscribers "
                "(id, email, email_key, status, created_at, status_changed_at, confirm_nonce) "
                "VALUES (1, 'a@example.com', 'a@example.com', 'active', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO consent_events (id, subscriber_id, kind, occurred_at, recorded_at) "
                "VALUES (1, 1, 'import', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )


def assert_append_only(engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="consent_events is append-only"), engine.begin() as connection:
        connection.execute(text("UPDATE consent_events SET kind = 'confirm' WHERE id = 1"))
    with engine.connect() as connection:
        assert (
            connection.execute(text("SELECT kind FROM consent_events WHERE id = 1")).scalar_one() == "import"
        )
    # Erasure must stay possible.
    with engine.begin() as connection:
        assert connection.execute(text("DELETE FROM subscribers WHERE id = 1")).rowcount == 1
        assert connection.execute(text("SELECT count(*) FROM consent_events")).scalar_one() == 0  # cascaded


def downgrade_to_base(engine: Engine) -> None:
    """Upgrade, downgrade to base, and check what every backend must show afterwards."""
    upgrade(engine)
    downgrade(engine)
    assert table_names(engine) <= {"alembic_version"}
    assert version_rows(engine) == []
    assert current_revision(engine) is None
    assert triggers(engine) == []
