"""Delivery truth: message keys never reused, the provider and submission time of each
delivery, and events whose address was not the delivery's recipient.

Revision ID: 0007t
Revises: 0007p

Plain ADD COLUMN and CREATE INDEX only: a batch copy of deliveries on SQLite would drop
the table, and the drop would cascade to provider_events. Existing rows keep a NULL
message key: their events carry the numeric row id, which still finds them (and only
them: every row claimed from now on has a key, so a numeric id never names it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007t"
down_revision = "0007p"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("message_key", sa.String(length=40), nullable=True))
    op.add_column("deliveries", sa.Column("provider", sa.String(length=20), nullable=True))
    op.add_column("deliveries", sa.Column("submitted_at", sa.DateTime(), nullable=True))
    op.create_index("ix_deliveries_message_key", "deliveries", ["message_key"], unique=True)
    op.add_column("provider_events", sa.Column("address_mismatch", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("provider_events", "address_mismatch")
    op.drop_index("ix_deliveries_message_key", table_name="deliveries")
    op.drop_column("deliveries", "submitted_at")
    op.drop_column("deliveries", "provider")
    op.drop_column("deliveries", "message_key")
