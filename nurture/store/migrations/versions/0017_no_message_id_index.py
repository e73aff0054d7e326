"""Deliveries lose the index on the provider's message id, which no query looks up.

Revision ID: 0007y
Revises: 0007x

The provider's id for an email (SendGrid's X-Message-Id, SES's MessageId) is kept on
its delivery to be shown: in the console's failed and stuck lists, a person's history
and the demo's events. Nothing finds a delivery by it: provider events name their
delivery by the random message key nurture gives each email (migration 0007t). Yet
every email's "sent" mark wrote the index, one more B-tree per email on the pass's
critical path: without it a 100,000-email pass on SQLite took 11.72 s instead of 12.09 s
(four runs each, alternated, on copies of one store). The downgrade builds it again.
"""

from alembic import op

revision = "0007y"
down_revision = "0007x"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_provider_message_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_provider_message_id", "deliveries", ["provider_message_id"])
