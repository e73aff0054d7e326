"""Newsletter claims by zone: an index to read one zone's active subscribers in id order,
and the zones in which a newsletter has reached everyone.

Revision ID: 0002n
Revises: 0002c
"""

import sqlalchemy as sa
from alembic import op

revision = "0002n"
down_revision = "0002c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index("ix_subscribers_status_timezone_id", ["status", "timezone", "id"], unique=False)
    op.create_table(
        "newsletter_zones",
        sa.Column("newsletter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["newsletter_id"],
            ["newsletters.id"],
            name=op.f("fk_newsletter_zones_newsletter_id_newsletters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("newsletter_id", "timezone", name=op.f("pk_newsletter_zones")),
    )


def downgrade() -> None:
    op.drop_table("newsletter_zones")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_status_timezone_id")
