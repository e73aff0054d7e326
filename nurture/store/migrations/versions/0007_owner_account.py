"""The owner's account in the console: code app secrets sealed at rest, a code app being set
up, recovery codes, invitations, what each session runs in, and login attempts by outcome.

Revision ID: 0007a
Revises: 0002v

Existing code app secrets (owners.totp_secret, kept in clear until now) are sealed with
NURTURE_SECRET_KEY into owners.totp_sealed (nurture.at_rest), then the clear column is
dropped. The key comes from the command that runs the migration (nurture.store.migrate
passes the config's secret keys); a store with a code app set up and no key to seal
it with stops the migration, with nothing changed, and says so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision = "0007a"
down_revision = "0002v"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PURPOSE = "totp"  # nurture.owners.accounts.TOTP_PURPOSE when this was written


def _keys() -> Sequence[str]:
    keys: Sequence[str] = context.config.attributes.get("secret_keys") or ()
    return keys


def _no_key(count: int, what: str) -> Exception:
    from nurture.errors import ConfigError  # the migration's own error type, read when needed

    return ConfigError(
        f"{count} owner account(s) have a code app set up, and NURTURE_SECRET_KEY is not set: "
        f"it is needed to {what} their code app secrets. Set it (the same key the server uses) "
        "and run the command again; nothing was changed."
    )


def _seal_existing() -> None:
    from nurture.at_rest import seal  # the sealing of this revision (format v1)

    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, totp_secret FROM owners WHERE totp_secret IS NOT NULL")
    ).all()
    if not rows:
        return
    keys = _keys()
    if not keys:
        raise _no_key(len(rows), "encrypt")
    for owner_id, secret in rows:
        connection.execute(
            sa.text("UPDATE owners SET totp_sealed = :sealed WHERE id = :id"),
            {"sealed": seal(keys[0], PURPOSE, secret, bound_to=f"owner {owner_id}"), "id": owner_id},
        )


def _open_existing() -> None:
    from nurture.at_rest import open_sealed  # the sealing of this revision (format v1)

    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, totp_sealed FROM owners WHERE totp_sealed IS NOT NULL")
    ).all()
    if not rows:
        return
    keys = _keys()
    if not keys:
        raise _no_key(len(rows), "decrypt")
    for owner_id, sealed in rows:
        opened = open_sealed(keys, PURPOSE, sealed, bound_to=f"owner {owner_id}")
        connection.execute(
            sa.text("UPDATE owners SET totp_secret = :secret WHERE id = :id"),
            {"secret": opened.value, "id": owner_id},
        )


def upgrade() -> None:
    # Plain ADD and DROP COLUMN on owners, never Alembic's batch copy: on SQLite the copy drops
    # the table, and with foreign keys on, the drop cascades to every owner's sessions.
    op.add_column("owners", sa.Column("totp_sealed", sa.String(length=255), nullable=True))
    op.add_column("owners", sa.Column("totp_pending_sealed", sa.String(length=255), nullable=True))
    op.add_column("owners", sa.Column("totp_pending_at", sa.DateTime(), nullable=True))
    op.add_column(
        "owners", sa.Column("totp_pending_misses", sa.Integer(), server_default="0", nullable=False)
    )
    _seal_existing()
    op.drop_column("owners", "totp_secret")

    with op.batch_alter_table("owner_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_agent", sa.String(length=200), nullable=True))

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=20), nullable=True))
    op.execute("UPDATE login_attempts SET outcome = CASE WHEN succeeded THEN 'signed_in' ELSE 'failed' END")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.alter_column("outcome", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("succeeded")

    op.create_table(
        "owner_recovery_codes",
        sa.Column("id", ID, nullable=False),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_owner_recovery_codes_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_owner_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("owner_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_recovery_codes_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "owner_invites",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("invited_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_owner_invites_token_hash")),
    )
    with op.batch_alter_table("owner_invites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_invites_email_key"), ["email_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("owner_invites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_invites_email_key"))
    op.drop_table("owner_invites")
    with op.batch_alter_table("owner_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_recovery_codes_owner_id"))
    op.drop_table("owner_recovery_codes")

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("succeeded", sa.Boolean(), nullable=True))
    op.execute("UPDATE login_attempts SET succeeded = (outcome = 'signed_in')")
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.alter_column("succeeded", existing_type=sa.Boolean(), nullable=False)
        batch_op.drop_column("outcome")

    with op.batch_alter_table("owner_sessions", schema=None) as batch_op:
        batch_op.drop_column("user_agent")

    # Plain columns on owners, for the reason given in upgrade() (DROP COLUMN: SQLite 3.35 on).
    op.add_column("owners", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    _open_existing()
    for column in ("totp_pending_misses", "totp_pending_at", "totp_pending_sealed", "totp_sealed"):
        op.drop_column("owners", column)
