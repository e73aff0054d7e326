"""Each delivery holds the kinds of event it has had, set as the events arrive.

Revision ID: 0007x
Revises: 0007w

The Results count, per email, how many of its deliveries were delivered, opened,
clicked, bounced, complained or unsubscribed. They read each delivery's events to know:
with 10 million past emails and 20 million events, the 30-day page spent 120 ms of its
220 ms on the events of one recent 50,000-person newsletter. Since migration 0007h a
delivery already kept, as bits, the kinds of its events the retention pass had deleted
(`retired_events`); now every stored event sets its bit when it is recorded, so the
column is renamed `event_bits` and filled here from the events still stored. The bits
are those of nurture.store.models.EVENT_BITS, written out: a migration must not change
when the code does. This reads every stored event once (about a minute per 10 million
on SQLite); the counts shown do not change.
"""

from alembic import op

revision = "0007x"
down_revision = "0007w"
branch_labels = None
depends_on = None

_BITS = (
    ("'delivered'", 1),
    ("'opened'", 2),
    ("'clicked'", 4),
    ("'bounced_hard', 'bounced_soft', 'bounced_undetermined', 'rejected'", 8),
    ("'complained'", 16),
    ("'unsubscribed'", 32),
)


def upgrade() -> None:
    op.execute("ALTER TABLE deliveries RENAME COLUMN retired_events TO event_bits")
    kinds = " + ".join(f"max(CASE WHEN kind IN ({names}) THEN {bit} ELSE 0 END)" for names, bit in _BITS)
    op.execute(
        f"UPDATE deliveries SET event_bits = event_bits | (SELECT {kinds} FROM provider_events"
        " WHERE provider_events.delivery_id = deliveries.id)"
        " WHERE EXISTS (SELECT 1 FROM provider_events WHERE provider_events.delivery_id = deliveries.id)"
    )


def downgrade() -> None:
    # The bits of stored events stay set: the code before counted their events as well.
    op.execute("ALTER TABLE deliveries RENAME COLUMN event_bits TO retired_events")
