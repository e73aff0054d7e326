"""Settings the owner changes in the console, kept beside config.yaml.

Revision ID: 0007c
Revises: 0007a
"""

import sqlalchemy as sa
from alembic import op

revision = "0007c"
down_revision = "0007a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.Column("saved_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_saved_settings")),
    )


def downgrade() -> None:
    op.drop_table("saved_settings")
