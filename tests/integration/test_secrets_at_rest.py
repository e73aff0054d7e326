"""Code app secrets are kept sealed under NURTURE_SECRET_KEY: the migration 0007a seals the
ones kept in clear before it (and refuses, changing nothing, without a key), the key can be
rotated as for links, and `nurture owner reseal` moves every secret to the current key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, select, text

from nurture.at_rest import open_sealed
from nurture.cli.main import cli
from nurture.errors import ConfigError
from nurture.owners.accounts import add_owner
from nurture.owners.codeapp import PURPOSE, enrol_totp
from nurture.owners.sessions import log_in
from nurture.store import models as m
from nurture.store.db import make_engine, reading
from nurture.store.migrate import alembic_config, current_revision, upgrade
from tests.support.factories import SECRET, at, make_app, write_project

NOW = at("2026-12-01 15:00")
CLEAR = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NEW_KEY = "a-brand-new-secret-key-0123456789"
PASSWORD = "twelve chars or more"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    url = (
        str(request.getfixturevalue("postgres_url"))
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'sealing.db'}"
    )
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _owner_before_0007a(engine: Engine) -> None:
    upgrade(engine, "0002v")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO owners (id, email, email_key, password_hash, totp_secret, totp_last_step, "
                "created_at, password_changed_at) VALUES (7, 'anna@riverbend.example', "
                "'anna@riverbend.example', 'x', :secret, 5, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
            ),
            {"secret": CLEAR},
        )
        connection.execute(
            text(
                "INSERT INTO login_attempts (at, account, ip, succeeded) VALUES "
                "('2026-11-30 00:00:00', 'a', '192.0.2.1', :yes), "
                "('2026-11-30 00:00:00', 'a', '192.0.2.1', :no)"
            ),
            {"yes": True, "no": False},
        )


def test_the_migration_seals_secrets_kept_in_clear(engine: Engine) -> None:
    _owner_before_0007a(engine)
    upgrade(engine, secret_keys=[SECRET])
    columns = {column["name"] for column in inspect(engine).get_columns("owners")}
    assert "totp_secret" not in columns
    with engine.connect() as connection:
        sealed, step = connection.execute(text("SELECT totp_sealed, totp_last_step FROM owners")).one()
        outcomes = sorted(connection.execute(text("SELECT outcome FROM login_attempts")).scalars())
    assert CLEAR not in sealed and step == 5
    assert open_sealed([SECRET], PURPOSE, sealed, bound_to="owner 7").value == CLEAR
    assert outcomes == ["failed", "signed_in"]


def test_without_a_key_the_migration_stops_and_changes_nothing(engine: Engine) -> None:
    _owner_before_0007a(engine)
    with pytest.raises(ConfigError, match="NURTURE_SECRET_KEY is not set"):
        upgrade(engine)
    assert current_revision(engine) == "0002v"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT totp_secret FROM owners")).scalar_one() == CLEAR


def test_the_way_back_opens_them_again(engine: Engine) -> None:
    _owner_before_0007a(engine)
    upgrade(engine, secret_keys=[SECRET])
    command.downgrade(alembic_config(engine, [SECRET]), "0002v")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT totp_secret FROM owners")).scalar_one() == CLEAR
        assert sorted(connection.execute(text("SELECT succeeded FROM login_attempts")).scalars()) == [
            False,
            True,
        ]


def test_a_store_opened_by_the_app_is_sealed_with_the_configured_key(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    _owner_before_0007a(engine)
    engine.dispose()
    app = make_app(tmp_path)  # App.open migrates, with NURTURE_SECRET_KEY = SECRET
    with reading(app.engine) as session:
        sealed = session.scalar(select(m.Owner.totp_sealed))
    assert open_sealed([SECRET], PURPOSE, sealed, bound_to="owner 7").value == CLEAR


def _sealed(app) -> str:
    with reading(app.engine) as session:
        return str(session.scalar(select(m.Owner.totp_sealed)))


def test_rotating_the_key_keeps_the_code_app_working(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    owner = add_owner(app, "anna@riverbend.example", PASSWORD, NOW)
    secret, _ = enrol_totp(app, owner.email)
    app.close()
    rotated = make_app(
        tmp_path, environ={"NURTURE_SECRET_KEY": NEW_KEY, "NURTURE_PREVIOUS_SECRET_KEYS": SECRET}
    )
    bound = f"owner {owner.id}"
    assert open_sealed([SECRET], PURPOSE, _sealed(rotated), bound_to=bound).value == secret
    signed_in = log_in(rotated, owner.email, PASSWORD, pyotp.TOTP(secret).at(NOW), ip="192.0.2.1", now=NOW)
    assert signed_in.session_id is not None
    # Opened with the previous key at that sign-in, and sealed again with the new one.
    assert open_sealed([NEW_KEY], PURPOSE, _sealed(rotated), bound_to=bound).value == secret
    rotated.close()
    only_new = make_app(tmp_path, environ={"NURTURE_SECRET_KEY": NEW_KEY})
    later = NOW + timedelta(minutes=1)
    assert log_in(
        only_new, owner.email, PASSWORD, pyotp.TOTP(secret).at(later), ip="192.0.2.1", now=later
    ).session_id


def test_reseal_moves_every_secret_to_the_current_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_project(tmp_path)
    app = make_app(tmp_path)
    owner = add_owner(app, "anna@riverbend.example", PASSWORD, NOW)
    secret, _ = enrol_totp(app, owner.email)
    app.close()
    monkeypatch.setenv("NURTURE_SECRET_KEY", NEW_KEY)
    monkeypatch.setenv("NURTURE_PREVIOUS_SECRET_KEYS", SECRET)
    result = CliRunner().invoke(cli, ["--config", str(config), "owner", "reseal"], prog_name="nurture")
    assert result.exit_code == 0, result.output
    assert "1 code app secret(s) sealed again" in result.output
    monkeypatch.delenv("NURTURE_PREVIOUS_SECRET_KEYS")
    after = make_app(tmp_path, environ={"NURTURE_SECRET_KEY": NEW_KEY})
    assert open_sealed([NEW_KEY], PURPOSE, _sealed(after), bound_to=f"owner {owner.id}").value == secret
    # Without the key it was sealed with, reseal says what to do instead of failing half-way.
    after.close()
    monkeypatch.setenv("NURTURE_SECRET_KEY", "yet-another-secret-key-000000")
    failed = CliRunner().invoke(cli, ["--config", str(config), "owner", "reseal"], prog_name="nurture")
    assert (
        failed.exit_code == 1 and "cannot be decrypted" in failed.output and "Traceback" not in failed.output
    )


def test_the_migration_keeps_every_row_that_refers_to_an_owner(engine: Engine) -> None:
    """0007a changes owners' columns in place: Alembic's batch copy of a table on SQLite drops
    it, and with foreign keys on, dropping owners would cascade to every owner's sessions."""
    _owner_before_0007a(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO owner_sessions (id_hash, owner_id, csrf_token, created_at, last_seen_at) "
                "VALUES (:hash, 7, 'c', '2026-11-30 00:00:00', '2026-11-30 00:00:00')"
            ),
            {"hash": "a" * 64},
        )

    def sessions() -> list[int]:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT owner_id FROM owner_sessions")).scalars())

    upgrade(engine, secret_keys=[SECRET])
    assert sessions() == [7]
    command.downgrade(alembic_config(engine, [SECRET]), "0002v")
    assert sessions() == [7]
