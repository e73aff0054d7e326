"""Alembic environment: runs on the engine nurture hands it (no alembic.ini needed)."""

from alembic import context

from nurture.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes starting on a fresh database: the second waits here, then
            # finds the schema already at head. (SQLite's BEGIN IMMEDIATE does the same.)
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727387)")
        context.run_migrations()
    connection.commit()
