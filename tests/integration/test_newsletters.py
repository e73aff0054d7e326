"""Newsletters: schedule (lint first), subscriber-local and practice time, cancel before
and during sending, the daily cap shared with the series, test copies, the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from nurture.cli.main import cli
from nurture.errors import InputError, NotFound
from nurture.newsletters import cancel, list_newsletters, schedule, send_test
from nurture.providers.base import Batch, Outcome
from nurture.sending.claims import Claim
from nurture.sending.deliveries import release
from nurture.sending.sendpass import SendingPass, send_due
from nurture.sending.streams import newsletter_stream
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, at, make_app
from tests.support.newsletters import (
    BEFORE,
    WINTER_SUBJECT,
    add_people,
    deliveries,
    newsletter_file,
    passes,
    recording_app,
    status_of,
)


@pytest.fixture
def database_url(both_stores: str) -> str:
    """For the tests that should hold on both stores."""
    return both_stores


# ---------------------------------------------------------------- subscriber-local and practice time


ZONES = {
    "Pacific/Auckland": "auckland",
    "Asia/Kolkata": "kolkata",
    "Europe/London": "london",
    "America/Los_Angeles": "la",
}


def test_subscriber_local_time_lands_inside_the_right_hour_in_each_zone(
    tmp_path: Path, database_url: str | None
) -> None:
    app, transport = recording_app(tmp_path, database_url)
    people = {
        zone_name: add_people(app, zone_name, 2, BEFORE, prefix=prefix) for zone_name, prefix in ZONES.items()
    }
    no_zone = add_people(
        app, None, 1, BEFORE, prefix="default"
    )  # read in delivery.default_timezone (Los Angeles)
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    stream = newsletter_stream(newsletter_id)

    # The earliest zone on Earth (UTC+14) reaches 09:00 on Dec 1 at 19:00Z on Nov 30.
    with transaction(app.engine) as session:
        assert session.get(m.Newsletter, newsletter_id).first_due_at == at("2026-11-30 19:00")  # type: ignore[union-attr]

    first_claim_at: dict[int, datetime] = {}
    statuses: dict[datetime, str] = {}
    for moment in passes(app, at("2026-11-30 12:00"), at("2026-12-02 06:00")):
        for row in deliveries(app, stream):
            first_claim_at.setdefault(row.subscriber_id or 0, moment)
        statuses[moment] = status_of(app, newsletter_id)

    rows = deliveries(app, stream)
    assert len(rows) == 9 and all(row.status == m.DeliveryStatus.SENT for row in rows)
    assert len({row.subscriber_id for row in rows}) == 9  # once each
    for zone_name, ids in {**people, "America/Los_Angeles (default)": no_zone}.items():
        tz = ZoneInfo(zone_name.split(" ")[0])
        for row in (r for r in rows if r.subscriber_id in ids):
            local = row.claimed_at.astimezone(tz)
            assert (local.date().isoformat(), local.hour) == ("2026-12-01", 9), (zone_name, local)
            assert local.minute < 15, (zone_name, local)  # the first pass after 09:00 local
            assert first_claim_at[row.subscriber_id] == row.claimed_at  # not earlier, not later
    # In UTC: Auckland (NZDT, +13) first, then Kolkata (+5:30), London (+0), Los Angeles (-8).
    order = sorted(rows, key=lambda r: r.claimed_at)
    expected = {
        "Pacific/Auckland": at("2026-11-30 20:00"),
        "Asia/Kolkata": at("2026-12-01 03:30"),
        "Europe/London": at("2026-12-01 09:00"),
        "America/Los_Angeles": at("2026-12-01 17:00"),
    }
    for zone_name, ids in people.items():
        assert {r.claimed_at for r in rows if r.subscriber_id in ids} == {expected[zone_name]}
    assert order[0].subscriber_id in people["Pacific/Auckland"]
    assert statuses[at("2026-11-30 19:45")] == m.NewsletterStatus.SCHEDULED
    assert statuses[at("2026-11-30 20:00")] == m.NewsletterStatus.SENDING
    # Sent only once 09:00 has passed everywhere (UTC-12: 21:00Z on Dec 1).
    assert statuses[at("2026-12-01 20:45")] == m.NewsletterStatus.SENDING
    assert statuses[at("2026-12-01 21:00")] == m.NewsletterStatus.SENT
    assert [record.subject for record in transport.sent] == [WINTER_SUBJECT] * 9


def test_practice_time_is_one_instant_for_everyone(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path)
    add_people(app, "Pacific/Auckland", 1, BEFORE, prefix="auckland")
    add_people(app, "Europe/London", 1, BEFORE, prefix="london")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    # 09:00 in Los Angeles (the practice's zone in config.yaml) is 17:00Z.
    assert send_due(app, at("2026-12-01 16:59")).sent == 0
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SCHEDULED
    assert send_due(app, at("2026-12-01 17:00")).sent == 2
    assert {row.claimed_at for row in deliveries(app)} == {at("2026-12-01 17:00")}
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT
    assert send_due(app, at("2026-12-02 17:00")).sent == 0


def test_segment_sends_only_to_subscribers_with_the_tag(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path)
    tagged = add_people(app, "Europe/London", 2, BEFORE, prefix="client")
    add_people(app, "Europe/London", 3, BEFORE, prefix="reader")
    with transaction(app.engine) as session:
        for person in tagged:
            session.add(m.SubscriberTag(subscriber_id=person, tag="clients", created_at=BEFORE))
    path = newsletter_file(app, "clients-only.md")
    text = (
        newsletter_file(app).read_text(encoding="utf-8").replace("subject:", "segment: Clients\nsubject:", 1)
    )
    path.write_text(text, encoding="utf-8")
    newsletter_id = schedule(app, path, "2026-12-01 09:00", "practice", BEFORE)
    assert list_newsletters(app)[0].segment_tag == "clients"
    send_due(app, at("2026-12-01 17:00"))
    assert sorted(row.subscriber_id for row in deliveries(app)) == sorted(tagged)
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT


def test_what_goes_out_is_what_was_approved_not_later_edits(tmp_path: Path) -> None:
    app, transport = recording_app(tmp_path)
    add_people(app, "Europe/London", 1, BEFORE, prefix="reader")
    path = newsletter_file(app)
    schedule(app, path, "2026-12-01 09:00", "practice", BEFORE)
    path.write_text(
        path.read_text(encoding="utf-8").replace(WINTER_SUBJECT, "Edited after approval"), encoding="utf-8"
    )
    send_due(app, at("2026-12-01 17:00"))
    assert [record.subject for record in transport.sent] == [WINTER_SUBJECT]


# ---------------------------------------------------------------- refusals


def test_any_check_finding_refuses_the_schedule_with_file_and_line(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    path = newsletter_file(app, "careless.md")
    path.write_text(
        "---\nsubject: A careless note\ncta_url: https://example.com/ok\n---\n"
        "Hello.\n\nSee [our page](http://example.com/insecure) for more.\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        schedule(app, path, "2026-12-01 09:00", "practice", BEFORE)
    message = str(caught.value)
    assert "was not scheduled: 2 problems" in message
    assert f"{path}:1: preheader is missing" in message  # a missing key points at the front matter
    assert f"{path}:7: link http://example.com/insecure uses http://" in message
    assert list_newsletters(app) == []


@pytest.mark.parametrize("text", ["tomorrow", "2026-12-01", "01/12/2026 09:00", "2026-12-01 25:00", ""])
def test_a_time_that_is_not_yyyy_mm_dd_hh_mm_is_refused(tmp_path: Path, text: str) -> None:
    app = make_app(tmp_path)
    with pytest.raises(InputError, match="YYYY-MM-DD HH:MM"):
        schedule(app, newsletter_file(app), text, "practice", BEFORE)


def test_times_in_the_past_are_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    now = at("2026-12-01 12:00")  # 04:00 in Los Angeles, 01:00 on Dec 2 in Auckland
    with pytest.raises(InputError, match="already passed in America/Los_Angeles"):
        schedule(app, newsletter_file(app), "2026-12-01 03:59", "practice", now)
    # Subscriber time: 09:00 on Dec 1 is still ahead in Los Angeles...
    assert schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", now)
    # ...but not once someone lives where it has already passed.
    add_people(app, "Pacific/Auckland", 1, now, prefix="auckland")
    with pytest.raises(InputError, match="already passed for subscribers in Pacific/Auckland"):
        schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", now)
    with pytest.raises(InputError, match="--timezone"):
        schedule(app, newsletter_file(app), "2026-12-09 09:00", "everywhere", now)
    assert len(list_newsletters(app)) == 1


# ---------------------------------------------------------------- cancel


def test_cancel_before_sending_sends_nothing(tmp_path: Path) -> None:
    app, transport = recording_app(tmp_path)
    add_people(app, "Europe/London", 3, BEFORE, prefix="reader")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    assert cancel(app, newsletter_id, at("2026-11-30 08:00")) == m.NewsletterStatus.SCHEDULED
    for _ in passes(app, at("2026-11-30 18:00"), at("2026-12-02 00:00"), timedelta(hours=1)):
        pass
    assert deliveries(app) == [] and transport.sent == []
    assert status_of(app, newsletter_id) == m.NewsletterStatus.CANCELLED
    assert list_newsletters(app)[0].status == m.NewsletterStatus.CANCELLED


def test_cancel_during_sending_stops_new_claims(tmp_path: Path, database_url: str | None) -> None:
    app, transport = recording_app(tmp_path, database_url)
    add_people(app, "Europe/London", 10, BEFORE, prefix="reader")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    assert send_due(app, at("2026-12-01 09:00"), limit=4).sent == 4
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENDING
    assert cancel(app, newsletter_id, at("2026-12-01 09:01")) == m.NewsletterStatus.SENDING
    for _ in passes(app, at("2026-12-01 09:02"), at("2026-12-03 09:00"), timedelta(hours=1)):
        pass
    assert len(deliveries(app)) == 4 and len(transport.sent) == 4
    assert status_of(app, newsletter_id) == m.NewsletterStatus.CANCELLED
    info = list_newsletters(app)[0]
    assert (info.status, info.sent, info.claimed, info.failed) == (m.NewsletterStatus.CANCELLED, 4, 0, 0)


def test_cancel_during_a_pass_skips_what_it_claimed_and_had_not_sent(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner cancels while a pass holds claims for the newsletter it has not handed over
    yet: its last check skips them, so nobody else gets it."""
    app, transport = recording_app(tmp_path, database_url)
    add_people(app, "Europe/London", 6, BEFORE, prefix="reader")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "subscriber", BEFORE)
    claim = SendingPass._claim

    def claim_then_cancel(self: SendingPass, room: int) -> list[Claim]:
        claims = claim(self, room)
        if claims:  # the owner cancels after the claim, before the transport runs
            cancel(app, newsletter_id, at("2026-12-01 09:00"))
        return claims

    monkeypatch.setattr(SendingPass, "_claim", claim_then_cancel)
    summary = send_due(app, at("2026-12-01 09:00"))
    assert (summary.sent, summary.skipped) == (0, 6)
    assert transport.sent == []
    assert {(row.status, row.error) for row in deliveries(app)} == {
        (m.DeliveryStatus.SKIPPED, "skipped: the newsletter was cancelled")
    }
    assert status_of(app, newsletter_id) == m.NewsletterStatus.CANCELLED


def test_cancel_refuses_unknown_sent_and_already_cancelled(tmp_path: Path) -> None:
    app, _ = recording_app(tmp_path)
    add_people(app, "Europe/London", 1, BEFORE, prefix="reader")
    with pytest.raises(NotFound):
        cancel(app, 99, BEFORE)
    sent_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    send_due(app, at("2026-12-01 17:00"))
    with pytest.raises(InputError, match="already been sent"):
        cancel(app, sent_id, at("2026-12-01 18:00"))
    other = schedule(app, newsletter_file(app), "2026-12-08 09:00", "practice", BEFORE, again=True)
    cancel(app, other, BEFORE)
    with pytest.raises(InputError, match="already cancelled"):
        cancel(app, other, BEFORE)


# ---------------------------------------------------------------- the daily cap, shared with the series


def test_newsletter_and_series_step_due_the_same_day_share_the_cap_newsletter_first(
    tmp_path: Path, database_url: str | None
) -> None:
    app, _ = recording_app(tmp_path, database_url, **{"delivery.max_emails_per_day": 1})
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)  # 17:00Z
    # Enrolled at 12:00 New York time: step 1 is due at once, inside the window.
    person = add_people(
        app, "America/New_York", 1, at("2026-12-01 17:00"), prefix="reader", enroll_them=True
    )[0]
    for _ in passes(app, at("2026-12-01 17:00"), at("2026-12-03 23:00")):
        pass
    rows = {row.stream: row for row in deliveries(app)}
    assert set(rows) == {newsletter_stream(newsletter_id), "kap-intro"}
    assert rows[newsletter_stream(newsletter_id)].claimed_at == at("2026-12-01 17:00")
    # The series step waited for the next local day's window: 09:00 New York on Dec 2.
    assert rows["kap-intro"].claimed_at == at("2026-12-02 14:00")
    assert all(row.subscriber_id == person for row in rows.values())


def test_newsletter_held_by_the_cap_goes_out_in_the_next_days_window_not_at_midnight(
    tmp_path: Path, database_url: str | None
) -> None:
    app, _ = recording_app(tmp_path, database_url, **{"delivery.max_emails_per_day": 1})
    ny = ZoneInfo("America/New_York")
    add_people(
        app, "America/New_York", 1, at("2026-12-01 14:00"), prefix="reader", enroll_them=True
    )  # step 1 at 09:00 NY
    newsletter_id = schedule(
        app, newsletter_file(app), "2026-12-01 08:00", "practice", BEFORE
    )  # 16:00Z, 11:00 NY
    for _ in passes(app, at("2026-12-01 14:00"), at("2026-12-03 04:00")):
        pass
    rows = {row.stream: row for row in deliveries(app)}
    assert rows["kap-intro"].claimed_at == at("2026-12-01 14:00")
    held = rows[newsletter_stream(newsletter_id)]
    local = held.claimed_at.astimezone(ny)
    assert local.date().isoformat() == "2026-12-02"  # the next local day...
    assert local.hour == 9 and local.minute == 0  # ...when its send window opens, not at 00:00
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT
    per_day: dict[object, int] = {}
    for row in deliveries(app):
        day = row.claimed_at.astimezone(ny).date()
        per_day[day] = per_day.get(day, 0) + 1
    assert set(per_day.values()) == {1}


# ---------------------------------------------------------------- list counts and released claims


class Picky:
    """Sends, fails or leaves unknown per address (a provider with a bad day)."""

    name = "picky"

    def __init__(self, fail: set[str], unknown: set[str]) -> None:
        self.fail, self.unknown = fail, unknown
        self.sent: list[str] = []

    def send(self, batch: Batch) -> list[Outcome]:
        outcomes = []
        for envelope in batch.envelopes:
            if envelope.to_email in self.fail:
                outcomes.append(Outcome(envelope.delivery_id, "failed", error="550 no such user"))
            elif envelope.to_email in self.unknown:
                outcomes.append(Outcome(envelope.delivery_id, "unknown", error="read timeout"))
            else:
                self.sent.append(envelope.to_email)
                outcomes.append(
                    Outcome(envelope.delivery_id, "sent", provider_message_id=f"id-{envelope.delivery_id}")
                )
        return outcomes

    def close(self) -> None:
        pass


def test_list_counts_sent_failed_and_claimed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.use_transport(Picky(fail={"reader1@example.com"}, unknown={"reader2@example.com"}))
    add_people(app, "Europe/London", 4, BEFORE, prefix="reader")
    first = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    later = schedule(app, newsletter_file(app), "2026-12-15 09:00", "subscriber", BEFORE, again=True)
    send_due(app, at("2026-12-01 17:00"))
    listed = {info.id: info for info in list_newsletters(app)}
    assert [info.id for info in list_newsletters(app)] == [later, first]  # newest first
    assert (listed[first].sent, listed[first].failed, listed[first].claimed, listed[first].status) == (
        2,
        1,
        1,
        m.NewsletterStatus.SENT,
    )
    assert (listed[later].sent, listed[later].status, listed[later].timezone_mode) == (
        0,
        m.NewsletterStatus.SCHEDULED,
        "subscriber",
    )
    assert listed[later].send_at_local == "2026-12-15 09:00"


def test_a_released_claim_of_a_finished_newsletter_is_sent_again(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    picky = Picky(fail=set(), unknown={"reader1@example.com"})
    app.use_transport(picky)
    add_people(app, "Europe/London", 3, BEFORE, prefix="reader")
    newsletter_id = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    send_due(app, at("2026-12-01 17:00"))
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT  # nobody left without a delivery row
    stuck = [row.id for row in deliveries(app) if row.status == m.DeliveryStatus.CLAIMED]
    assert len(stuck) == 1
    picky.unknown.clear()
    assert release(app, at("2026-12-01 18:00"), ids=stuck) == 1  # the owner checked: it did not go out
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENDING
    assert send_due(app, at("2026-12-01 18:01")).sent == 1
    assert sorted(picky.sent) == ["reader0@example.com", "reader1@example.com", "reader2@example.com"]
    assert status_of(app, newsletter_id) == m.NewsletterStatus.SENT


# ---------------------------------------------------------------- test copies


def test_send_test_sends_one_marked_copy_and_records_nothing(tmp_path: Path) -> None:
    app, transport = recording_app(tmp_path)
    result = send_test(app, newsletter_file(app), "Owner@Example.com")
    assert result.subject == f"[TEST] {WINTER_SUBJECT}"
    assert result.findings == []
    assert [(r.to_email, r.subject) for r in transport.sent] == [
        ("Owner@example.com", f"[TEST] {WINTER_SUBJECT}")
    ]
    assert deliveries(app) == []
    with pytest.raises(InputError):
        send_test(app, newsletter_file(app), "not an address")


def test_send_test_through_the_outbox_writes_one_eml(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    send_test(app, newsletter_file(app), "owner@example.com")
    files = list(app.config.outbox_dir.glob("*.eml"))
    assert len(files) == 1
    text = files[0].read_text(encoding="utf-8")
    assert f"Subject: [TEST] {WINTER_SUBJECT}" in text
    assert "To: owner@example.com" in text


# ---------------------------------------------------------------- the commands


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"NURTURE_CONFIG": str(tmp_path / "config.yaml"), "NURTURE_SECRET_KEY": SECRET}
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="nurture")
    return result.exit_code, result.output


def test_commands_schedule_list_send_due_and_cancel(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_people(app, "Europe/London", 2, BEFORE, prefix="reader")
    path = str(newsletter_file(app))
    now = "2026-11-25T12:00:00Z"
    code, out = run_cli(
        tmp_path,
        "newsletter",
        "schedule",
        path,
        "--at",
        "2026-12-01 09:00",
        "--timezone",
        "subscriber",
        "--now",
        now,
    )
    assert code == 0, out
    assert "scheduled newsletter 1" in out
    code, out = run_cli(
        tmp_path, "newsletter", "schedule", path, "--at", "2026-12-08 20:00", "--now", now, "--again"
    )
    assert code == 0 and "outside the send window" in out
    code, out = run_cli(tmp_path, "send-due", "--now", "2026-12-01T09:00:00Z")
    assert code == 0 and out.startswith("sent 2,"), out
    code, out = run_cli(tmp_path, "newsletter", "list")
    assert code == 0 and "sent" in out and WINTER_SUBJECT in out and "2 newsletter(s)" in out
    code, out = run_cli(tmp_path, "newsletter", "cancel", "2", "--now", now)
    assert code == 0 and "will not be sent" in out
    code, out = run_cli(tmp_path, "newsletter", "cancel", "2", "--now", now)
    assert code == 1 and "already cancelled" in out
    code, out = run_cli(tmp_path, "newsletter", "schedule", path, "--at", "2026-12-01", "--now", now)
    assert code == 1 and "error: --at" in out and "Traceback" not in out
    code, out = run_cli(tmp_path, "newsletter", "test", path, "--to", "owner@example.com")
    assert code == 0 and "[TEST]" in out


# ---------------------------------------------------------------- the same newsletter twice


def test_scheduling_the_same_content_twice_is_refused_unless_again(tmp_path: Path) -> None:
    app, transport = recording_app(tmp_path)
    add_people(app, "Europe/London", 2, BEFORE, prefix="reader")
    first = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    with pytest.raises(
        InputError, match=rf"newsletter {first} \(scheduled, 2026-12-01 09:00\) has the same content.*--again"
    ):
        schedule(app, newsletter_file(app), "2026-12-08 09:00", "practice", BEFORE)
    send_due(app, at("2026-12-01 17:00"))
    assert len(transport.take()) == 2
    # Sent: still refused, a copy of the file included (content, not the file name, is what counts).
    copy = newsletter_file(app).with_name("2026-12-winter-note-copy.md")
    copy.write_text(newsletter_file(app).read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(InputError, match=rf"newsletter {first} \(sent"):
        schedule(app, copy, "2026-12-08 09:00", "practice", BEFORE)
    # Cancelled ones do not count; --again sends it once more, to everyone.
    again = schedule(app, copy, "2026-12-08 09:00", "practice", BEFORE, again=True)
    send_due(app, at("2026-12-08 17:00"))
    assert len(transport.take()) == 2 and again != first


def test_the_schedule_command_names_the_existing_newsletter_and_takes_again(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nurture.cli.main import cli

    app, _ = recording_app(tmp_path)
    first = schedule(app, newsletter_file(app), "2026-12-01 09:00", "practice", BEFORE)
    args = [
        "--config",
        str(app.config.path),
        "newsletter",
        "schedule",
        str(newsletter_file(app)),
        "--at",
        "2026-12-08 09:00",
        "--now",
        "2026-11-30T12:00:00Z",
    ]
    refused = CliRunner().invoke(cli, args, env={"NURTURE_SECRET_KEY": SECRET})
    assert (
        refused.exit_code == 1
        and f"newsletter {first} (scheduled" in refused.output
        and "Traceback" not in refused.output
    )
    accepted = CliRunner().invoke(cli, [*args, "--again"], env={"NURTURE_SECRET_KEY": SECRET})
    assert accepted.exit_code == 0 and f"scheduled newsletter {first + 1}" in accepted.output
