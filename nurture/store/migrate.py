"""Apply the Alembic migrations shipped inside the package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

# Alembic is imported where it is used (a heavy import, ~140 ms): every command checks the
# schema is current (ensure_schema), and that check needs no Alembic while it is.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest migration. A test proves it equals Alembic's own head, so the
# up-to-date check every command makes needs no Alembic import (cron start-up time).
HEAD = "0007y"


def alembic_config(engine: Engine, secret_keys: Sequence[str] = ()) -> AlembicConfig:
    """`secret_keys`: NURTURE_SECRET_KEY then the previous keys, for a migration that seals
    (or opens) secrets kept in the store (0007a); empty when none is set."""
    from alembic.config import Config as AlembicConfig  # deferred, heavy: see above

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    config.attributes["secret_keys"] = tuple(secret_keys)
    return config


def upgrade(engine: Engine, revision: str = "head", *, secret_keys: Sequence[str] = ()) -> None:
    from alembic import command  # deferred, heavy: see above

    command.upgrade(alembic_config(engine, secret_keys), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory  # deferred, heavy: see above

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def ensure_schema(engine: Engine, *, secret_keys: Sequence[str] = ()) -> None:
    """Bring the schema up to date if it is not; cheap when it already is."""
    if current_revision(engine) != HEAD:
        upgrade(engine, secret_keys=secret_keys)
