"""The due enrollments read in the order they are claimed, from the index alone.

Revision ID: 0007u
Revises: 0007t

Each claim round reads the next thousand due enrollments `ORDER BY next_due_at, id`.
On PostgreSQL the index on (status, next_due_at) gave no order among rows due at the
same moment (an import, a series started for everyone), so every round read and sorted
all the rows still due: a pass to 100,000 people spent 10 s sorting. With `id` in the
index the round reads its thousand rows in order and stops. SQLite's indexes end in the
rowid already, so there the order was always in the index; the column is the same on
both so the models stay one.
"""

from alembic import op

revision = "0007u"
down_revision = "0007t"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_enrollments_due", table_name="enrollments")
    op.create_index("ix_enrollments_due", "enrollments", ["status", "next_due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_due", table_name="enrollments")
    op.create_index("ix_enrollments_due", "enrollments", ["status", "next_due_at"])
