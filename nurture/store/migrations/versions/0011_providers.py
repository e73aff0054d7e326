"""Providers: provider events in one neutral vocabulary, and the per-email totals that
outlive the rows the retention pass deletes.

Revision ID: 0007p
Revises: 0007h

Stored event kinds move to the neutral names every provider maps onto: SendGrid's
"processed" is "accepted", "bounced" is "bounced_hard", "blocked" is "bounced_soft" and
"dropped" is "rejected". Plain UPDATEs: the column is a string, no table is copied.

deliveries.retired_events keeps, as bits, the kinds of event a delivery had once the
retention pass (nurture.retention) has deleted the events: plain ADD COLUMN, never a
batch copy of deliveries (on SQLite the copy's DROP would cascade to child rows).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007p"
down_revision = "0007h"
branch_labels = None
depends_on = None

_RENAMES = (
    ("processed", "accepted"),
    ("bounced", "bounced_hard"),
    ("blocked", "bounced_soft"),
    ("dropped", "rejected"),
)


def _rename(pairs: tuple[tuple[str, str], ...]) -> None:
    events = sa.table("provider_events", sa.column("kind", sa.String))
    for old, new in pairs:
        op.execute(events.update().where(events.c.kind == old).values(kind=new))


def upgrade() -> None:
    _rename(_RENAMES)
    op.add_column("deliveries", sa.Column("retired_events", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("deliveries", "retired_events")
    # SES's undetermined bounces had no old name: they read as the old "bounced"'s
    # gentler sibling, "blocked" (no suppression followed them either).
    _rename(tuple((new, old) for old, new in _RENAMES) + (("bounced_undetermined", "blocked"),))
