"""owner_notices: the weekly summaries and alerts sent to the owner, each once.

Revision ID: 0002d
Revises: 0001
Create Date: 2026-11-26 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002d"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owner_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_notices")),
        sa.UniqueConstraint("kind", "period", name=op.f("uq_owner_notices_kind_period")),
    )


def downgrade() -> None:
    op.drop_table("owner_notices")
