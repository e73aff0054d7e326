"""Internationalized addresses through a real store, import file and transport: the import names
the line of a non-ASCII local part; SendGrid and the outbox get an IDN domain in ASCII."""

from __future__ import annotations

import csv
import io
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from nurture.audience.importer import import_csv
from nurture.audience.signup import subscribe
from nurture.errors import InputError
from tests.support.factories import at, make_app
from tests.support.sendgrid_standin import SendGridStandIn

NOW = at("2026-12-01 14:00")


def test_import_names_the_line_and_field_of_a_non_ascii_local_part(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(
        [
            ["email", "first_name", "timezone", "consented_at", "consent_source"],
            ["ok@example.com", "Ok", "", "2025-01-01", "web form"],
            ["josé@example.com", "José", "", "2025-01-01", "web form"],
        ]
    )
    path = tmp_path / "people.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    message = str(caught.value)
    assert (
        f"{path}, line 3: email:" in message and "josé@example.com" in message and "before the @" in message
    )


def test_sendgrid_gets_the_ascii_domain(tmp_path: Path, standin: SendGridStandIn) -> None:
    app = make_app(
        tmp_path,
        environ={"SENDGRID_API_KEY": "SG.test", "NURTURE_SENDGRID_HOST": standin.url},
        **{"delivery.transport": "sendgrid"},
    )
    subscribe(app, "user@bücher.example", NOW, first_name="Uli", source="test")
    [request] = standin.requests
    assert request.status == 202
    assert request.body["personalizations"][0]["to"][0]["email"] == "user@xn--bcher-kva.example"


def test_the_outbox_writes_the_ascii_domain(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    subscribe(app, "user@bücher.example", NOW, first_name="Uli", source="test")
    [path] = app.config.outbox_dir.glob("*.eml")
    message = message_from_bytes(path.read_bytes(), policy=default_policy)
    assert message["To"].addresses[0].addr_spec == "user@xn--bcher-kva.example"  # type: ignore[union-attr]
