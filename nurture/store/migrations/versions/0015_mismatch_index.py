"""An index on the few provider events that named the wrong address.

Revision ID: 0007w
Revises: 0007v

The console's deliveries page shows how many events named a delivery but another
address than its recipient's. Counting them read every provider event ever stored:
with 20 million events (a year or two of sending) the page took 2.5 s. Such events
are rare, so the index holds only them (a partial index) and costs nothing on the
writes of every other event. SQLite uses a partial index only when the query states
the condition as the index does, so each store gets its own spelling of "is true".
"""

import sqlalchemy as sa
from alembic import op

revision = "0007w"
down_revision = "0007v"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_provider_events_address_mismatch",
        "provider_events",
        ["address_mismatch"],
        sqlite_where=sa.text("address_mismatch IS 1"),
        postgresql_where=sa.text("address_mismatch IS TRUE"),
    )


def downgrade() -> None:
    op.drop_index("ix_provider_events_address_mismatch", table_name="provider_events")
