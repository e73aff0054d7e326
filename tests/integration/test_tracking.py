"""delivery.tracking (off | aggregate | per_person) and what SendGrid learns.

Every request nurture makes to the SendGrid stand-in (a real HTTP server) carries the
configured tracking_settings and only opaque ids; the webhook keeps opens and clicks per
person only under per_person; stats and the report say which mode made their numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from nurture.app import App
from nurture.audience.people import tag
from nurture.audience.signup import subscribe
from nurture.cli.main import cli
from nurture.config import load_config
from nurture.newsletters import send_test
from nurture.reporting.report import render_report
from nurture.reporting.stats import step_stats
from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.webhooks import process_sendgrid_events
from tests.support.factories import REPO, SECRET, active_subscribers, at, make_app
from tests.support.sendgrid_standin import SendGridStandIn

START = at("2026-12-01 14:00")
OFF = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
    "subscription_tracking": {"enable": False},
}
ON = {
    "click_tracking": {"enable": True, "enable_text": False},
    "open_tracking": {"enable": True},
    "subscription_tracking": {"enable": False},
}
EXPECTED = {"off": OFF, "aggregate": ON, "per_person": ON}


def sendgrid_app(tmp_path: Path, standin: SendGridStandIn, tracking: str | None) -> App:
    environ = {"SENDGRID_API_KEY": "SG.test", "NURTURE_SENDGRID_HOST": standin.url}
    overrides: dict[str, object] = {"delivery.transport": "sendgrid"}
    if tracking is not None:
        overrides["delivery.tracking"] = tracking
    return make_app(tmp_path, environ=environ, **overrides)


@pytest.mark.parametrize("tracking", [None, "off", "aggregate", "per_person"])
def test_every_request_carries_the_configured_tracking_and_only_opaque_ids(
    tmp_path: Path, standin: SendGridStandIn, tracking: str | None
) -> None:
    app = sendgrid_app(tmp_path, standin, tracking)
    ids = active_subscribers(app, 3, START)
    assert ids
    tag(app, "person0@example.com", "curious", START)  # a tag must never reach the provider
    subscribe(app, "new.reader@example.com", START, first_name="Ada", source="test")  # the confirmation
    send_due(app, at("2026-12-01 15:00"))  # a series step
    send_test(
        app, REPO / "campaigns" / "newsletters" / "2026-12-winter-note.md", "owner@example.com"
    )  # a test copy
    assert len(standin.requests) == 3
    expected = EXPECTED[tracking or "off"]  # off unless configured otherwise
    for request in standin.requests:
        assert request.status == 202, request.body
        body = request.body
        assert body["tracking_settings"] == expected
        for personalization in body["personalizations"]:
            assert set(personalization.get("custom_args", {})) <= {"delivery_id"}
        assert "custom_args" not in body
        if len(body["personalizations"]) > 1:
            # Message-level headers are only those every email of the request shares.
            assert set(body.get("headers", {})) <= {"List-Unsubscribe-Post"}
        for category in body.get("categories", []):
            assert category in ("series", "newsletter", "confirmation"), category
        text = repr(body).lower()
        for private in ("kap-intro", "curious", "consent", app.config.consent.version.lower()):
            assert private not in text, private  # no stream slug, tag or consent detail anywhere


def test_the_config_reads_a_bare_yaml_off(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert data["delivery"]["tracking"] == "off"  # quoted in the shipped file
    data["delivery"]["tracking"] = False  # what YAML makes of a bare `tracking: off`
    data["database"]["url"] = f"sqlite:///{tmp_path / 'n.db'}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_config(path, environ={"NURTURE_SECRET_KEY": SECRET}).delivery.tracking == "off"


# ---------------------------------------------------------------- webhook and stats


def reading_events(app: App, deliveries: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Two opens and a click on the first delivery, one open on the second, plus a delivery event.
    `deliveries`: each one's message key and recipient, as SendGrid echoes them."""

    def event(name: str, number: int, delivery: tuple[str, str]) -> dict[str, object]:
        return {
            "event": name,
            "timestamp": 1764601200 + number,
            "sg_event_id": f"{name}-{number}",
            "delivery_id": delivery[0],
            "email": delivery[1],
        }

    first, second = deliveries
    return [
        event("open", 1, first),
        event("open", 2, first),
        event("click", 3, first),
        event("open", 4, second),
        event("delivered", 5, first),
    ]


def sent_pass(tmp_path: Path, tracking: str) -> tuple[App, list[int]]:
    app = make_app(tmp_path, **{"delivery.tracking": tracking})
    active_subscribers(app, 2, START)
    assert send_due(app, at("2026-12-01 15:00")).sent == 2
    with transaction(app.engine) as session:
        rows = session.execute(
            select(m.Delivery.id, m.Delivery.message_key, m.Subscriber.email)
            .join(m.Subscriber, m.Subscriber.id == m.Delivery.subscriber_id)
            .order_by(m.Delivery.id)
        ).all()
    ids = [row.id for row in rows]
    process_sendgrid_events(
        app, reading_events(app, [(row.message_key, row.email) for row in rows]), at("2026-12-01 16:00")
    )
    return app, ids


def stored(app: App) -> dict[str, m.ProviderEvent]:
    with transaction(app.engine) as session:
        rows = list(session.scalars(select(m.ProviderEvent)))
        session.expunge_all()
    return {row.provider_event_id: row for row in rows}


@pytest.mark.parametrize("tracking", ["off", "aggregate"])
def test_without_per_person_no_open_or_click_is_tied_to_a_delivery(tmp_path: Path, tracking: str) -> None:
    app, ids = sent_pass(tmp_path, tracking)
    rows = stored(app)
    for name in ("open-1", "open-2", "click-3", "open-4"):
        assert rows[name].delivery_id is None, name
        assert (rows[name].stream, rows[name].step) == ("kap-intro", 1)  # looked up from the delivery row
    assert rows["delivered-5"].delivery_id == ids[0]  # delivery events still find their delivery


def test_per_person_ties_opens_and_clicks_to_their_delivery(tmp_path: Path) -> None:
    app, ids = sent_pass(tmp_path, "per_person")
    rows = stored(app)
    assert [rows[name].delivery_id for name in ("open-1", "open-2", "click-3", "open-4")] == [
        ids[0],
        ids[0],
        ids[0],
        ids[1],
    ]
    assert (rows["open-1"].stream, rows["open-1"].step) == ("kap-intro", 1)
    [step1] = [row for row in step_stats(app) if row.label == "kap-intro step 1"]
    assert (step1.opened, step1.clicked, step1.tracking) == (2, 1, "per_person")  # unique per delivery
    assert step1.shown("opened") == "2 (100.0%)"


def test_aggregate_stats_are_totals_per_email(tmp_path: Path) -> None:
    app, _ = sent_pass(tmp_path, "aggregate")
    [step1] = [row for row in step_stats(app) if row.label == "kap-intro step 1"]
    assert (step1.opened, step1.clicked, step1.delivered, step1.tracking) == (3, 1, 1, "aggregate")
    assert step1.shown("opened") == "3 total" and step1.shown("delivered") == "1 (50.0%)"
    text = render_report(app, now=at("2026-12-06 12:00"))
    assert "none tied to a person (delivery.tracking: aggregate)" in text and "3 total" in text


def test_off_shows_not_tracked_instead_of_zero(tmp_path: Path) -> None:
    app, _ = sent_pass(tmp_path, "off")
    [step1] = [row for row in step_stats(app) if row.label == "kap-intro step 1"]
    assert step1.shown("opened") == "not tracked" and step1.shown("clicked") == "not tracked"
    text = render_report(app, now=at("2026-12-06 12:00"))
    assert "Opens and clicks are not tracked (delivery.tracking: off)" in text
    assert "not tracked" in text and "0.0%" not in text.split('id="all-numbers"')[1].split("Opened")[0]
    assert (
        'class="bar"' in text and ">Opened<" not in text.split('id="funnel-kap-intro"')[1].split("</svg>")[0]
    )
    env = {"NURTURE_CONFIG": str(app.config.path), "NURTURE_SECRET_KEY": SECRET}
    result = CliRunner().invoke(cli, ["stats"], env=env, prog_name="nurture")
    assert result.exit_code == 0, result.output
    step_line = next(line for line in result.output.splitlines() if line.startswith("kap-intro step 1"))
    assert step_line.count("not tracked") == 2
    assert "Opens and clicks are not tracked" in result.output
    result = CliRunner().invoke(cli, ["stats", "--json"], env=env, prog_name="nurture")
    assert '"opened_rate": null' in result.output and '"tracking": "off"' in result.output
