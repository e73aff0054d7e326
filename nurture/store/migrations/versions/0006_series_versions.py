"""Series versions: published snapshots, and step keys on deliveries and enrollments.

Revision ID: 0002v
Revises: 0002n

Existing rows are migrated without reading any file (a migration must not depend on
campaigns/ as it is today): a newsletter delivery gets the fixed key "newsletter";
a series delivery gets the placeholder key "#<step>". The first time version 1 of
that series is created (nurture.series.catalog), each placeholder becomes the
key of the step at that position in version 1, and enrollments get their key and
version the same way. Placeholders cannot clash with real keys, which never start
with "#".
"""

import sqlalchemy as sa
from alembic import op

revision = "0002v"
down_revision = "0002n"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "series_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series_versions")),
        sa.UniqueConstraint("campaign", "version", name=op.f("uq_series_versions_campaign_version")),
    )
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_step_key", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("step_key", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("series_version", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE deliveries SET step_key = CASE "
        "WHEN newsletter_id IS NOT NULL OR stream LIKE 'newsletter:%' THEN 'newsletter' "
        "ELSE '#' || CAST(step AS VARCHAR(12)) END"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("step_key", existing_type=sa.String(length=120), nullable=False)
        batch_op.drop_constraint("uq_deliveries_subscriber_id_stream_step", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_subscriber_id_stream_step_key"), ["subscriber_id", "stream", "step_key"]
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_deliveries_subscriber_id_stream_step_key"), type_="unique")
        batch_op.create_unique_constraint(
            "uq_deliveries_subscriber_id_stream_step", ["subscriber_id", "stream", "step"]
        )
        batch_op.drop_column("series_version")
        batch_op.drop_column("step_key")
    with op.batch_alter_table("enrollments", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("next_step_key")
    op.drop_table("series_versions")
