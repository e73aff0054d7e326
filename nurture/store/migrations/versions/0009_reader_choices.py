"""The reader's side and the inbox: preference-center choices, re-permission asks and
reviews, and sending holds placed by alerts.

Revision ID: 0007r
Revises: 0007c

Existing subscribers get "everything, as it comes" (series and newsletter on, the
daily cap, no pause) through the columns' server defaults, so nobody's mail changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007r"
down_revision = "0007c"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of the table: on SQLite a copy drops and renames
    # subscribers, and with foreign keys on, dropping it would cascade to every child row.
    op.add_column(
        "subscribers", sa.Column("series_off", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "subscribers", sa.Column("newsletter_off", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column(
        "subscribers", sa.Column("frequency", sa.String(length=10), server_default="daily", nullable=False)
    )
    op.add_column("subscribers", sa.Column("paused_until", sa.DateTime(), nullable=True))
    op.add_column("subscribers", sa.Column("preferences_seen_at", sa.DateTime(), nullable=True))
    op.create_table(
        "repermission_asks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("subscriber_id", _ID, nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("quiet_since", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_repermission_asks_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repermission_asks")),
        sa.UniqueConstraint("subscriber_id", "round", name=op.f("uq_repermission_asks_subscriber_id_round")),
    )
    with op.batch_alter_table("repermission_asks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_repermission_asks_outcome"), ["outcome"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_repermission_asks_subscriber_id"), ["subscriber_id"], unique=False
        )
    op.create_table(
        "sunset_reviews",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("ran_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_sunset_reviews")),
    )
    op.create_table(
        "sending_holds",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
        sa.Column("lifted_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sending_holds")),
    )
    op.create_index(op.f("ix_sending_holds_lifted_at"), "sending_holds", ["lifted_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sending_holds_lifted_at"), table_name="sending_holds")
    op.drop_table("sending_holds")
    op.drop_table("sunset_reviews")
    op.drop_index(op.f("ix_repermission_asks_subscriber_id"), table_name="repermission_asks")
    op.drop_index(op.f("ix_repermission_asks_outcome"), table_name="repermission_asks")
    op.drop_table("repermission_asks")
    # Plain DROP COLUMN (SQLite 3.35 and later), for the reason given in upgrade().
    for column in ("preferences_seen_at", "paused_until", "frequency", "newsletter_off", "series_off"):
        op.drop_column("subscribers", column)
