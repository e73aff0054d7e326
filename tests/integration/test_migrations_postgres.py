"""The Alembic migrations against a real PostgreSQL: exactly the models' schema and a
clean downgrade (the backend-neutral tests, a second upgrade that changes nothing among
them, run on both stores in the migrations test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from nurture.store.db import make_engine
from nurture.store.migrate import current_revision, head_revision, upgrade
from nurture.store.models import Base
from tests.support.schema import (
    HEAD,
    MODEL_TABLES,
    downgrade,
    downgrade_to_base,
    schema_diff,
    table_names,
    triggers,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    assert engine.dialect.name == "postgresql"
    yield engine
    engine.dispose()


def functions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'public' ORDER BY p.proname"
                )
            ).scalars()
        )


def test_upgrade_empty_database_matches_the_models(engine: Engine):
    assert table_names(engine) == set()
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine) == HEAD
    assert table_names(engine) == MODEL_TABLES | {"alembic_version"}
    assert schema_diff(engine) == []
    assert triggers(engine) == [
        "consent_events_append_only",
        "owner_audit_no_delete",
        "owner_audit_no_update",
    ]
    assert functions(engine) == ["consent_events_append_only", "owner_audit_append_only"]


def storage_settings(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, reloptions FROM pg_class WHERE relkind = 'r' AND reloptions IS NOT NULL "
                "AND relnamespace = 'public'::regnamespace"
            )
        ).all()
    return {name: list(options) for name, options in rows}


def test_table_storage_settings_are_the_models(engine: Engine):
    """Alembic's comparison does not see storage settings: the migrations must still give
    each table the ones its model names (deliveries keeps room for HOT updates), and a
    downgrade past 0007v takes them away."""
    upgrade(engine)
    wanted = {
        table.name: [f"{key}={value}" for key, value in table.dialect_options["postgresql"]["with"].items()]
        for table in Base.metadata.sorted_tables
        if table.dialect_options["postgresql"]["with"]
    }
    assert wanted == {"deliveries": ["fillfactor=50"]}
    assert storage_settings(engine) == wanted
    downgrade(engine, "0007u")
    assert storage_settings(engine) == {}


def test_ids_are_bigint_and_times_are_naive_timestamps(engine: Engine):
    upgrade(engine)
    with engine.connect() as connection:
        types = dict(
            connection.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public'"
                )
            ).all()
        )
    assert types["subscribers.id"] == "bigint"
    assert types["consent_events.subscriber_id"] == "bigint"
    assert types["deliveries.claimed_at"] == "timestamp without time zone"
    assert types["newsletters.content"] == "json"
    assert len(types) == sum(len(table.columns) for table in Base.metadata.sorted_tables) + 1  # + version_num


def test_the_comparison_does_see_differences(engine: Engine):
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE subscribers ALTER COLUMN first_name TYPE varchar(50)"))
    diff = schema_diff(engine)
    assert len(diff) == 1
    [(kind, _schema, table, column, *_rest)] = diff[0]
    assert (kind, table, column) == ("modify_type", "subscribers", "first_name")


def test_downgrade_to_base_leaves_no_tables(engine: Engine):
    downgrade_to_base(engine)
    assert functions(engine) == []
    with engine.connect() as connection:
        relations = (
            connection.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'"
                )
            )
            .scalars()
            .all()
        )
    assert relations == []  # no tables, indexes or sequences left behind
