"""Indexes that keep the owner's pages fast after years of history.

Revision ID: 0007h
Revises: 0007r

The Today page, the alerts and the weekly summary count what happened in the last day
or week. Without these, each of those counts reads every delivery or provider event
ever stored: with 2 million past emails the Today page took 1.4 s, with them 0.08 s
(benchmarks/bench_history.py; the query plans are in benchmarks/RESULTS.md).
"""

from alembic import op

revision = "0007h"
down_revision = "0007r"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_status_finished_at", "deliveries", ["status", "finished_at"])
    op.create_index("ix_deliveries_newsletter_id", "deliveries", ["newsletter_id"])
    op.create_index("ix_provider_events_received_at", "provider_events", ["received_at"])
    op.create_index("ix_provider_events_kind_occurred_at", "provider_events", ["kind", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_events_kind_occurred_at", table_name="provider_events")
    op.drop_index("ix_provider_events_received_at", table_name="provider_events")
    op.drop_index("ix_deliveries_newsletter_id", table_name="deliveries")
    op.drop_index("ix_deliveries_status_finished_at", table_name="deliveries")
