"""The signup rate limit moves into the store, so every web process shares it.

Revision ID: 0002w
Revises: 0002d
Create Date: 2026-11-26 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002w"
down_revision = "0002d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signup_attempts",
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_hash", name=op.f("pk_signup_attempts")),
    )
    op.create_index(
        op.f("ix_signup_attempts_window_start"), "signup_attempts", ["window_start"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_signup_attempts_window_start"), table_name="signup_attempts")
    op.drop_table("signup_attempts")
