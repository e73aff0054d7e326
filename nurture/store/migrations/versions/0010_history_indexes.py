"""Years of history without slow pages (indexes for the day's and week's counts, results
kept summarized per day), one hold of a kind in place at a time, and a provider's rate
shared by every worker (rate_schedules).

Revision ID: 0007h
Revises: 0007r

The Today page, the alerts and the weekly summary count what happened in the last day
or week; without the indexes each count read every delivery or provider event ever
stored (with 2 million past emails the Today page took 1.4 s, with them 0.08 s). The
Results pages read summarized days (result_days, result_counts, result_sends) and only
the recent or changed days live (nurture.reporting.result_days). The tables start
empty: the daily upkeep summarizes past days a slice at a time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007h"
down_revision = "0007r"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Two workers' alerts racing on PostgreSQL each placed a hold (and sent its alert).
    op.create_index(
        "uq_sending_holds_kind_in_place",
        "sending_holds",
        ["kind"],
        unique=True,
        sqlite_where=sa.text("lifted_at IS NULL"),
        postgresql_where=sa.text("lifted_at IS NULL"),
    )
    op.create_index("ix_deliveries_status_finished_at", "deliveries", ["status", "finished_at"])
    op.create_index("ix_deliveries_newsletter_id", "deliveries", ["newsletter_id"])
    op.create_index("ix_provider_events_received_at", "provider_events", ["received_at"])
    op.create_index("ix_provider_events_kind_occurred_at", "provider_events", ["kind", "occurred_at"])
    op.create_table(
        "result_days",
        sa.Column("day", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("summarized_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_result_days")),
    )
    op.create_index(op.f("ix_result_days_state"), "result_days", ["state"])
    op.create_table(
        "result_counts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("day", sa.DateTime(), nullable=False),
        sa.Column("stream", sa.String(length=120), nullable=False),
        sa.Column("step_key", sa.String(length=120), nullable=False),
        sa.Column("series_version", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("newsletter_id", _ID, nullable=True),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_counts")),
    )
    op.create_index(op.f("ix_result_counts_day"), "result_counts", ["day"])
    op.create_table(
        "result_sends",
        sa.Column("id", _ID, nullable=False),
        sa.Column("day", sa.DateTime(), nullable=False),
        sa.Column("stream", sa.String(length=120), nullable=False),
        sa.Column("quarter_start", sa.DateTime(), nullable=False),
        sa.Column("newsletter", sa.Boolean(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_sends")),
    )
    op.create_index(op.f("ix_result_sends_day"), "result_sends", ["day"])
    op.create_table(
        "rate_schedules",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_schedules")),
    )


def downgrade() -> None:
    op.drop_table("rate_schedules")
    op.drop_index("uq_sending_holds_kind_in_place", table_name="sending_holds")
    op.drop_index(op.f("ix_result_sends_day"), table_name="result_sends")
    op.drop_table("result_sends")
    op.drop_index(op.f("ix_result_counts_day"), table_name="result_counts")
    op.drop_table("result_counts")
    op.drop_index(op.f("ix_result_days_state"), table_name="result_days")
    op.drop_table("result_days")
    op.drop_index("ix_provider_events_kind_occurred_at", table_name="provider_events")
    op.drop_index("ix_provider_events_received_at", table_name="provider_events")
    op.drop_index("ix_deliveries_newsletter_id", table_name="deliveries")
    op.drop_index("ix_deliveries_status_finished_at", table_name="deliveries")
