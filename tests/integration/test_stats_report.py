"""Stats against a hand-built set of deliveries and events, sends per day, and the report file."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.app import App
from nurture.cli.main import cli
from nurture.errors import NotFound
from nurture.reporting.report import render_report, write_report
from nurture.reporting.stats import DaySends, Row, sends_per_day, step_stats
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, at, make_app
from tests.support.stats_dataset import KAP, WINTER_SUBJECT, build_dataset


def counts(row: Row) -> tuple[int, ...]:
    return (row.sent, row.delivered, row.opened, row.clicked, row.bounced, row.complained, row.unsubscribed)


@pytest.fixture
def database_url(both_stores: str) -> str:
    """Both stores: the per-day buckets are written differently for each dialect."""
    return both_stores


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"delivery.tracking": "per_person"}  # the data set ties opens to deliveries


def test_stats_match_the_hand_built_set_exactly(app: App) -> None:
    data = build_dataset(app)
    rows = step_stats(app)
    by_label = {row.label: row for row in rows}
    assert [row.label for row in rows] == [
        "kap-intro step 1",
        "kap-intro step 2",
        "kap-intro step 3",
        "kap-intro step 4",
        "kap-intro step 5",
        f"newsletter {data.newsletter_id}",
    ]
    #                                                   sent deliv open click bounce compl unsub
    assert counts(by_label["kap-intro step 1"]) == (4, 2, 2, 1, 2, 0, 1)
    assert counts(by_label["kap-intro step 2"]) == (2, 2, 1, 0, 0, 1, 2)
    assert counts(by_label["kap-intro step 3"]) == (1, 1, 1, 0, 0, 0, 0)
    assert counts(by_label["kap-intro step 4"]) == (0, 0, 0, 0, 0, 0, 0)
    assert counts(by_label["kap-intro step 5"]) == (0, 0, 0, 0, 0, 0, 0)
    letter = by_label[f"newsletter {data.newsletter_id}"]
    assert counts(letter) == (3, 2, 2, 1, 1, 0, 1)
    assert (letter.kind, letter.stream, letter.step, letter.subject) == (
        "newsletter",
        data.stream,
        1,
        WINTER_SUBJECT,
    )
    step1 = by_label["kap-intro step 1"]
    assert step1.subject == app.campaigns[KAP].step(1).email.subject
    assert {
        name: step1.rate(name)
        for name in ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
    } == {
        "delivered": 0.5,
        "opened": 0.5,
        "clicked": 0.25,
        "bounced": 0.5,
        "complained": 0.0,
        "unsubscribed": 0.25,
    }
    assert by_label["kap-intro step 2"].rate("unsubscribed") == 1.0
    assert letter.rate("opened") == pytest.approx(2 / 3)
    assert by_label["kap-intro step 4"].rate("opened") == 0.0  # nothing sent: 0, not an error
    with pytest.raises(ValueError):
        step1.rate("sent")


def test_stats_since_and_campaign_filters(app: App) -> None:
    data = build_dataset(app)
    since = {row.label: counts(row) for row in step_stats(app, since=at("2026-12-01 08:00"))}
    assert since["kap-intro step 3"] == (0, 0, 0, 0, 0, 0, 0)  # d0 was sent on Nov 20
    assert since["kap-intro step 1"] == (4, 2, 2, 1, 2, 0, 1)
    assert since[f"newsletter {data.newsletter_id}"] == (3, 2, 2, 1, 1, 0, 1)
    only = step_stats(app, campaign=KAP, since=at("2026-12-04 00:00"))
    assert [(row.label, row.sent) for row in only] == [
        ("kap-intro step 1", 0),
        ("kap-intro step 2", 2),
        ("kap-intro step 3", 0),
        ("kap-intro step 4", 0),
        ("kap-intro step 5", 0),
    ]
    with pytest.raises(NotFound):
        step_stats(app, campaign="no-such-series")


def test_history_of_a_removed_campaign_is_still_listed(app: App) -> None:
    with transaction(app.engine) as session:
        session.add(
            m.Delivery(
                subscriber_id=None,
                stream="old-series",
                step=2,
                status=m.DeliveryStatus.SENT,
                claimed_at=at("2026-10-01 17:00"),
            )
        )
    rows = step_stats(app)
    assert [(row.label, row.sent, row.subject) for row in rows if row.stream == "old-series"] == [
        ("old-series step 2", 1, "(no longer in campaigns/)")
    ]
    assert [row.sent for row in step_stats(app, campaign="old-series")] == [1]


def test_sends_per_day_in_the_practice_zone_with_empty_days(app: App) -> None:
    build_dataset(app)
    days = sends_per_day(app, since=at("2026-12-01 08:00"))
    assert days == [
        DaySends(date(2026, 12, 1), series=4, newsletters=0),  # d4 at 07:45Z is still Dec 1 in Los Angeles
        DaySends(date(2026, 12, 2), series=0, newsletters=0),
        DaySends(date(2026, 12, 3), series=0, newsletters=3),
        DaySends(date(2026, 12, 4), series=2, newsletters=0),
    ]
    everything = sends_per_day(app)
    assert everything[0] == DaySends(date(2026, 11, 20), series=1)
    assert len(everything) == 15 and sum(day.total for day in everything) == 10


def test_sends_per_day_splits_half_hour_zones_at_local_midnight(tmp_path: Path, database_url: str) -> None:
    app = make_app(tmp_path, database_url=database_url, **{"delivery.default_timezone": "Asia/Kolkata"})
    with transaction(app.engine) as session:
        for when in ("2026-12-01 18:15", "2026-12-01 18:29", "2026-12-01 18:30", "2026-12-01 18:59"):
            session.add(
                m.Delivery(
                    subscriber_id=None, stream=KAP, step=1, status=m.DeliveryStatus.SENT, claimed_at=at(when)
                )
            )
    # 18:30Z is midnight in India (UTC+5:30): the same UTC hour falls on two local days.
    assert sends_per_day(app) == [
        DaySends(date(2026, 12, 1), series=2),
        DaySends(date(2026, 12, 2), series=2),
    ]


# ---------------------------------------------------------------- the report


EXTERNAL = re.compile(
    r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE
)


def assert_self_contained(text: str) -> None:
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    lowered = text.lower()
    for forbidden in (
        "<script",
        "<link",
        "<img",
        "<iframe",
        "@import",
        "url(",
        "@font-face",
        "http://",
        "https://",
    ):
        assert forbidden not in lowered, forbidden


def test_report_is_one_self_contained_file_with_every_chart_and_its_table(app: App, tmp_path: Path) -> None:
    build_dataset(app)
    out = write_report(app, tmp_path / "reports" / "report.html", now=at("2026-12-06 12:00"))
    assert out == tmp_path / "reports" / "report.html"
    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert text.startswith("<!DOCTYPE html>") and '<html lang="en">' in text
    charts = re.findall(r'<section class="chart" id="([^"]+)"', text)
    assert charts == ["funnel-kap-intro", "per-day", "rates", "newsletters"]
    for chart in charts:
        section = text.split(f'<section class="chart" id="{chart}"', 1)[1].split("</section>", 1)[0]
        assert f'aria-labelledby="{chart}-chart-title {chart}-chart-desc"' in section
        assert f'<title id="{chart}-chart-title">' in section and f'<desc id="{chart}-chart-desc">' in section
        assert section.count('class="bar"') > 0, chart
        assert "<table>" in section and "<caption>" in section
    # The numbers appear in the tables as well as in the bars.
    assert '<td class="num" data-label="Sent">4</td>' in text  # kap-intro step 1 sent (labelled for phones)
    assert "Newsletter: A gentle note for the winter months" in text
    assert "2 (66.7%)" in text  # newsletter opened, in the full table
    assert "Made 06 December 2026 at 04:00 (America/Los_Angeles)" in text


def test_report_with_nothing_sent_yet_says_so(app: App) -> None:
    text = render_report(app, now=at("2026-12-06 12:00"))
    assert_self_contained(text)
    assert 'class="bar"' not in text
    assert text.count('class="empty">Nothing to show yet') == 3  # funnel, per day, rates
    assert "No newsletter has been sent in this period." in text


def test_report_escapes_subjects(app: App) -> None:
    build_dataset(app)
    with transaction(app.engine) as session:
        letter = session.query(m.Newsletter).filter(m.Newsletter.subject == WINTER_SUBJECT).one()
        letter.subject = '<script>alert("x")</script> & more'
    text = render_report(app)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in text


# ---------------------------------------------------------------- the commands


def test_stats_and_report_commands(app: App, tmp_path: Path) -> None:
    build_dataset(app)
    env = {"NURTURE_CONFIG": str(tmp_path / "config.yaml"), "NURTURE_SECRET_KEY": SECRET}
    runner = CliRunner()
    result = runner.invoke(
        cli, ["stats", "--campaign", KAP, "--since", "2026-12-01"], env=env, prog_name="nurture"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "email",
        "sent",
        "delivered",
        "opened",
        "clicked",
        "bounced",
        "complained",
        "unsubscribed",
    ]
    step1 = next(line for line in lines if line.startswith("kap-intro step 1"))
    assert step1.split()[-13:] == [
        "4",
        "2",
        "(50.0%)",
        "2",
        "(50.0%)",
        "1",
        "(25.0%)",
        "2",
        "(50.0%)",
        "0",
        "(0.0%)",
        "1",
        "(25.0%)",
    ]
    assert lines[-1] == "6 email(s) sent since 2026-12-01"
    result = runner.invoke(cli, ["stats", "--json"], env=env, prog_name="nurture")
    assert result.exit_code == 0 and '"unsubscribed_rate": 0.25' in result.output
    result = runner.invoke(cli, ["stats", "--since", "last week"], env=env, prog_name="nurture")
    assert result.exit_code == 1 and result.output.startswith("error: --since")
    out = tmp_path / "r.html"
    result = runner.invoke(
        cli, ["report", "--out", str(out), "--now", "2026-12-06T12:00:00Z"], env=env, prog_name="nurture"
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report written: open {out.resolve()}"
    assert_self_contained(out.read_text(encoding="utf-8"))
