"""The owner console: owners, their sessions, login attempts, the append-only audit
log, and a record of each sending pass.

Revision ID: 0002c
Revises: 0002w
Create Date: 2026-11-26 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002c"
down_revision = "0002w"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The audit log is evidence of who did what: neither changed nor deleted, ever.
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER owner_audit_no_update BEFORE UPDATE ON owner_audit
    BEGIN SELECT RAISE(ABORT, 'owner_audit is append-only'); END
    """,
    """
    CREATE TRIGGER owner_audit_no_delete BEFORE DELETE ON owner_audit
    BEGIN SELECT RAISE(ABORT, 'owner_audit is append-only'); END
    """,
]
POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION owner_audit_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'owner_audit is append-only'; END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER owner_audit_no_update BEFORE UPDATE ON owner_audit
    FOR EACH ROW EXECUTE FUNCTION owner_audit_append_only()
    """,
    """
    CREATE TRIGGER owner_audit_no_delete BEFORE DELETE ON owner_audit
    FOR EACH ROW EXECUTE FUNCTION owner_audit_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owners")),
        sa.UniqueConstraint("email_key", name=op.f("uq_owners_email_key")),
    )
    op.create_table(
        "owner_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_owner_sessions_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_owner_sessions")),
    )
    with op.batch_alter_table("owner_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_sessions_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "login_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempts_at", ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempts_account"), ["account"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempts_ip"), ["ip"], unique=False)

    op.create_table(
        "owner_audit",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("detail", sa.String(length=400), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_audit")),
    )
    with op.batch_alter_table("owner_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_audit_at"), ["at"], unique=False)

    op.create_table(
        "send_passes",
        sa.Column("id", ID, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("stuck", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_passes")),
    )
    with op.batch_alter_table("send_passes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_send_passes_finished_at"), ["finished_at"], unique=False)

    for statement in POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS owner_audit_no_update ON owner_audit")
        op.execute("DROP TRIGGER IF EXISTS owner_audit_no_delete ON owner_audit")
        op.execute("DROP FUNCTION IF EXISTS owner_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS owner_audit_no_update")
        op.execute("DROP TRIGGER IF EXISTS owner_audit_no_delete")
    with op.batch_alter_table("send_passes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_passes_finished_at"))
    op.drop_table("send_passes")
    with op.batch_alter_table("owner_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_audit_at"))
    op.drop_table("owner_audit")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_attempts_ip"))
        batch_op.drop_index(batch_op.f("ix_login_attempts_account"))
        batch_op.drop_index("ix_login_attempts_at")
    op.drop_table("login_attempts")
    with op.batch_alter_table("owner_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_sessions_owner_id"))
    op.drop_table("owner_sessions")
    op.drop_table("owners")
