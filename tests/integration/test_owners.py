"""Owner accounts and their CLI, the record of sending passes, and the rates chart's fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from nurture.cli.main import cli
from nurture.errors import InputError, NotFound
from nurture.owners.accounts import add_owner, list_owners, remove_owner, reset_password
from nurture.owners.codeapp import enrol_totp
from nurture.owners.sessions import current, log_in
from nurture.reporting.charts import Series, horizontal_bars
from nurture.sending.passlog import last_pass
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading
from tests.support.factories import SECRET, active_subscribers, at, make_app, write_project

NOW = at("2026-12-01 15:00")
PASSWORD = "twelve chars or more"


def test_add_list_remove_and_reset(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    info = add_owner(app, "Anna@Riverbend.example", PASSWORD, NOW)
    assert info.email == "Anna@riverbend.example" and not info.has_totp
    with pytest.raises(InputError, match="already exists"):
        add_owner(app, "anna@riverbend.example", PASSWORD, NOW)
    with pytest.raises(InputError, match="at least 12"):
        add_owner(app, "b@riverbend.example", "short", NOW)
    assert [owner.email for owner in list_owners(app)] == ["Anna@riverbend.example"]

    session_id = log_in(app, "anna@riverbend.example", PASSWORD, "", ip="10.0.0.1", now=NOW).session_id
    assert session_id and current(app, session_id, NOW) is not None
    reset_password(app, "anna@riverbend.example", "a brand new passphrase", NOW)
    assert current(app, session_id, NOW) is None  # a reset ends every session
    assert log_in(app, "anna@riverbend.example", PASSWORD, "", ip="10.0.0.1", now=NOW).session_id is None
    session_id = log_in(
        app, "anna@riverbend.example", "a brand new passphrase", "", ip="10.0.0.1", now=NOW
    ).session_id
    assert session_id
    remove_owner(app, "anna@riverbend.example")
    assert current(app, session_id, NOW) is None and list_owners(app) == []
    with pytest.raises(NotFound):
        remove_owner(app, "anna@riverbend.example")


def test_totp_codes_are_checked_within_one_step(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_owner(app, "anna@riverbend.example", PASSWORD, NOW)
    secret, _ = enrol_totp(app, "anna@riverbend.example")
    totp = pyotp.TOTP(secret)

    def works(code: str, password: str = PASSWORD) -> bool:
        found = log_in(app, "anna@riverbend.example", password, code, ip="10.0.0.1", now=NOW)
        return found.session_id is not None

    assert not works(totp.at(NOW), "wrong password!")
    assert not works(totp.at(NOW - timedelta(seconds=90)))  # three steps old
    assert works(totp.at(NOW - timedelta(seconds=30)))  # a step behind: a slow phone clock
    assert works(totp.at(NOW))
    assert not works(totp.at(NOW))  # each code works once
    assert not works(totp.at(NOW - timedelta(seconds=30)))  # and nothing older than the last one used
    assert not works("12345x") and not works("")


def test_owner_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_project(tmp_path)
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> object:
        return runner.invoke(cli, ["--config", str(config), "owner", *args], input=stdin, prog_name="nurture")

    added = run("add", "anna@riverbend.example", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "owner account created" in added.output and "/console/" in added.output
    short = run("add", "b@riverbend.example", "--password-stdin", stdin="short\n")
    assert (
        short.exit_code == 1 and "at least 12 characters" in short.output and "Traceback" not in short.output
    )
    totp = run("totp", "anna@riverbend.example")
    assert totp.exit_code == 0
    secret = totp.output.split("type this secret into the app: ")[1].split()[0]
    assert len(secret) >= 16 and "█" in totp.output  # the QR code
    assert "with a code app" in run("list").output
    assert (
        run(
            "reset-password", "anna@riverbend.example", "--password-stdin", stdin="another long passphrase\n"
        ).exit_code
        == 0
    )
    assert run("remove", "anna@riverbend.example", "--yes").exit_code == 0
    assert "no owner accounts yet" in run("list").output


def test_each_sending_pass_is_recorded(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert last_pass(app) is None
    active_subscribers(app, 2, NOW)
    send_due(app, NOW)
    record = last_pass(app)
    assert record is not None and record.sent == 2 and record.outcome == "ok" and record.started_at == NOW
    with reading(app.engine) as session:
        assert len(session.scalars(select(m.SendPassRecord)).all()) == 1


def test_the_rates_chart_draws_zero_rates_when_emails_were_sent() -> None:
    svg = horizontal_bars(
        "rates",
        "Rates",
        "desc",
        ["Email 1", "Email 2"],
        [Series("Unsubscribe rate", "#000", [0.0, 0.0])],
        percent=True,
        zeros_are_data=True,
    )
    assert "Nothing to show yet" not in svg
    assert svg.count('class="bar"') == 2 and "0.0%" in svg
    empty = horizontal_bars(
        "rates",
        "Rates",
        "desc",
        [],
        [Series("Unsubscribe rate", "#000", [])],
        percent=True,
        zeros_are_data=True,
    )
    assert "Nothing to show yet" in empty
    # Elsewhere (the funnel lists every step, sent or not) all zero still means nothing yet.
    assert "Nothing to show yet" in horizontal_bars(
        "funnel", "F", "d", ["Email 1"], [Series("Sent", "#000", [0])]
    )
