"""`nurture doctor` against a DNS server on 127.0.0.1 (tests.support.dns_standin) with good,
missing and wrong SPF/DKIM/DMARC records, the running app over https (a self-signed
certificate the doctor is told to trust), and a resolver that never answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from nurture.app import App
from nurture.cli.main import cli
from nurture.deliverability.doctor import DoctorOptions, DoctorReport, run_doctor
from nurture.deliverability.provider_dns import PROVIDER_DNS
from nurture.deliverability.records import Finding, Status
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.dns_standin import Zone, dns_standin
from tests.support.factories import SECRET, active_subscribers, at, make_app
from tests.support.tls import self_signed
from tests.support.webserver import LiveWeb, live_web

NOW = at("2026-12-01 15:00")
SENDGRID = {
    "delivery.transport": "sendgrid",
    "deliverability.return_path_domain": "em123.example.com",
    "practice.reply_to": "hello@example.com",
    "sender.from_email": "hello@example.com",
}
ENVIRON = {"SENDGRID_API_KEY": "SG.not-used", "NURTURE_SENDGRID_HOST": "http://127.0.0.1:9"}

GOOD: Zone = {
    "example.com": [("TXT", '"v=spf1 include:_spf.example.com ~all"'), ("MX", "10 mx.example.com.")],
    "_spf.example.com": [("TXT", '"v=spf1 include:sendgrid.net -all"')],
    "sendgrid.net": [("TXT", '"v=spf1 ip4:167.89.0.0/17 ~all"')],
    "s1._domainkey.example.com": [("CNAME", "s1.domainkey.u1.wl1.sendgrid.net.")],
    "s2._domainkey.example.com": [("CNAME", "s2.domainkey.u1.wl1.sendgrid.net.")],
    "s1.domainkey.u1.wl1.sendgrid.net": [("TXT", '"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GN"')],
    "s2.domainkey.u1.wl1.sendgrid.net": [("TXT", '"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GM"')],
    "_dmarc.example.com": [("TXT", '"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"')],
    "em123.example.com": [("CNAME", "u1.wl1.sendgrid.net.")],
    "u1.wl1.sendgrid.net": [("TXT", '"v=spf1 include:sendgrid.net ~all"'), ("MX", "10 mx.sendgrid.net.")],
}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[LiveWeb, str]]:
    (tmp_path / "tls").mkdir()
    certificate, key = self_signed(tmp_path / "tls")
    with live_web(tmp_path, environ=ENVIRON, tls=(certificate, key), **SENDGRID) as served:
        yield served, str(certificate)


def doctor(app: App, zone: Zone, ca_file: str | None = None, timeout: float = 2.0) -> DoctorReport:
    with dns_standin(zone) as server:
        return run_doctor(
            app, NOW, DoctorOptions(nameservers=(server.address,), timeout=timeout, ca_file=ca_file)
        )


def by_check(report: DoctorReport, check: str) -> list[Finding]:
    return [finding for finding in report.findings if finding.check == check]


def statuses(report: DoctorReport) -> dict[str, set[Status]]:
    found: dict[str, set[Status]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.status)
    return found


def test_a_well_set_up_domain_and_site_pass(web: tuple[LiveWeb, str]) -> None:
    served, ca_file = web
    report = doctor(served.app, GOOD, ca_file)
    assert report.problems == [], report.render()
    assert statuses(report) == {
        "SPF": {Status.OK},
        "DKIM": {Status.OK},
        "DMARC": {Status.OK},
        "Return-Path": {Status.OK},
        "MX": {Status.OK},
        "Web": {Status.OK},
        "One-click": {Status.OK},
        "Webhook": {Status.SKIPPED},  # nothing sent in the last 24 hours
    }
    assert report.exit_code == 0 and report.summary() == "all good"
    assert "includes SendGrid" in by_check(report, "SPF")[0].words
    assert "aligned" in by_check(report, "DMARC")[1].words


def test_missing_records_are_problems_with_the_record_to_publish(web: tuple[LiveWeb, str]) -> None:
    served, ca_file = web
    report = doctor(served.app, {"mx.example.com": [("A", "192.0.2.1")]}, ca_file)
    assert report.exit_code == 1
    spf, *_ = by_check(report, "SPF")
    assert (
        spf.status == Status.PROBLEM and spf.publish == 'example.com TXT "v=spf1 include:sendgrid.net ~all"'
    )
    dkim = by_check(report, "DKIM")
    assert [f.status for f in dkim] == [Status.PROBLEM, Status.PROBLEM]
    assert dkim[0].publish == "s1._domainkey.example.com CNAME s1.domainkey.u1234567.wl123.sendgrid.net"
    [dmarc] = by_check(report, "DMARC")
    assert dmarc.status == Status.PROBLEM
    assert dmarc.publish == '_dmarc.example.com TXT "v=DMARC1; p=none; rua=mailto:hello@example.com"'
    assert by_check(report, "Return-Path")[0].status == Status.PROBLEM
    [mx] = by_check(report, "MX")
    assert mx.status == Status.PROBLEM and "replies to hello@example.com bounce" in mx.words


def test_wrong_records_are_problems(web: tuple[LiveWeb, str]) -> None:
    served, ca_file = web
    wrong: Zone = {
        **GOOD,
        "example.com": [("TXT", '"v=spf1 include:_spf.google.com +all"'), ("MX", "10 mx.example.com.")],
        "_spf.google.com": [("TXT", '"v=spf1 ip4:35.190.247.0/24 ~all"')],
        "em123.example.com": [("CNAME", "u1.wl1.sendgrid.net.")],
        "u1.wl1.sendgrid.net": [("TXT", '"v=spf1 ip4:192.0.2.0/24 ~all"')],
        "s2.domainkey.u1.wl1.sendgrid.net": [("TXT", '"v=DKIM1; k=rsa; p="')],
        "_dmarc.example.com": [("TXT", '"v=DMARC1; rua=mailto:dmarc@example.com"')],
    }
    report = doctor(served.app, wrong, ca_file)
    spf = by_check(report, "SPF")
    assert [f.status for f in spf] == [Status.PROBLEM, Status.PROBLEM]
    assert (
        "+all" in spf[0].words and spf[0].publish == 'example.com TXT "v=spf1 include:_spf.google.com ~all"'
    )
    assert "does not include SendGrid" in spf[1].words
    assert spf[1].publish == 'example.com TXT "v=spf1 include:sendgrid.net include:_spf.google.com +all"'
    assert [f.status for f in by_check(report, "DKIM")] == [Status.OK, Status.PROBLEM]
    assert "revoked" in by_check(report, "DKIM")[1].words
    assert by_check(report, "DMARC")[0].status == Status.PROBLEM
    assert "no valid policy" in by_check(report, "DMARC")[0].words


def test_two_spf_records_and_a_misaligned_return_path(tmp_path: Path) -> None:
    app = make_app(
        tmp_path, environ=ENVIRON, **{**SENDGRID, "deliverability.return_path_domain": "bounce.other.net"}
    )
    zone: Zone = {
        **GOOD,
        "example.com": [
            ("TXT", '"v=spf1 include:sendgrid.net ~all"'),
            ("TXT", '"v=spf1 include:_spf.google.com ~all"'),
            ("MX", "10 mx.example.com."),
        ],
        "_dmarc.example.com": [("TXT", '"v=DMARC1; p=reject; aspf=s; adkim=s"')],
        "bounce.other.net": [("CNAME", "u1.wl1.sendgrid.net.")],
    }
    report = doctor(app, zone)
    [spf] = by_check(report, "SPF")
    assert spf.status == Status.PROBLEM and "2 SPF records" in spf.words
    dmarc = by_check(report, "DMARC")
    assert dmarc[0].status == Status.OK and "p=reject" in dmarc[0].words
    assert dmarc[1].status == Status.PROBLEM and "not aligned" in dmarc[1].words


def test_dmarc_of_the_organizational_domain_counts_for_a_subdomain(tmp_path: Path) -> None:
    app = make_app(tmp_path, environ=ENVIRON, **{**SENDGRID, "sender.from_email": "news@mail.example.com"})
    zone: Zone = {
        **GOOD,
        "mail.example.com": GOOD["example.com"],
        "s1._domainkey.mail.example.com": GOOD["s1._domainkey.example.com"],
        "s2._domainkey.mail.example.com": GOOD["s2._domainkey.example.com"],
    }
    report = doctor(app, zone)
    assert by_check(report, "DMARC")[0].status == Status.OK
    assert "_dmarc.example.com" in by_check(report, "DMARC")[0].words


def test_a_resolver_that_never_answers_times_out_cleanly(tmp_path: Path) -> None:
    app = make_app(tmp_path, environ=ENVIRON, **SENDGRID)
    with dns_standin(GOOD, silent=True) as server:
        started = time.monotonic()
        report = run_doctor(app, NOW, DoctorOptions(nameservers=(server.address,), timeout=0.5))
        elapsed = time.monotonic() - started
    dns_findings = [f for f in report.findings if f.check in ("SPF", "DKIM", "DMARC", "Return-Path", "MX")]
    assert dns_findings and all(f.status == Status.WARN for f in dns_findings), report.render()
    assert all("no DNS answer within 0.5 seconds" in f.words for f in dns_findings)
    assert elapsed < 10, "each look-up gives up at its deadline"
    assert server.queries, "it did ask"


def test_http_and_unreachable_sites_and_the_outbox(tmp_path: Path) -> None:
    app = make_app(tmp_path, **{"web.public_base_url": "http://127.0.0.1:9"})
    report = doctor(app, GOOD)
    [web_finding] = by_check(report, "Web")
    assert web_finding.status == Status.PROBLEM and "must be https" in web_finding.words
    assert by_check(report, "Provider")[0].status == Status.WARN
    assert (
        by_check(report, "SPF") == [by_check(report, "SPF")[0]]
        and by_check(report, "SPF")[0].status == Status.OK
    )
    (tmp_path / "other").mkdir()
    unreachable = make_app(
        tmp_path / "other", environ=ENVIRON, **{**SENDGRID, "web.public_base_url": "https://127.0.0.1:9"}
    )
    report = doctor(unreachable, GOOD, timeout=1)
    assert by_check(report, "Web")[0].status == Status.PROBLEM
    assert "does not answer over https" in by_check(report, "Web")[0].words
    assert by_check(report, "One-click")[0].status == Status.SKIPPED


def test_an_untrusted_certificate_is_a_problem(web: tuple[LiveWeb, str]) -> None:
    served, _ = web
    report = doctor(served.app, GOOD)  # the system's CAs: the test certificate is not among them
    assert by_check(report, "Web")[0].status == Status.PROBLEM
    assert "CERTIFICATE_VERIFY_FAILED" in by_check(report, "Web")[0].words


def test_a_silent_webhook_while_sending_is_a_problem(tmp_path: Path) -> None:
    app = make_app(tmp_path, environ=ENVIRON, **SENDGRID)
    active_subscribers(app, 2, NOW - timedelta(hours=2))
    with transaction(app.engine) as session:
        for subscriber_id in (1, 2):
            session.add(
                m.Delivery(
                    subscriber_id=subscriber_id,
                    stream="kap-intro",
                    step=1,
                    step_key="01-what-is-kap",
                    series_version=1,
                    status=m.DeliveryStatus.SENT,
                    claimed_at=NOW - timedelta(hours=1),
                    finished_at=NOW - timedelta(hours=1),
                )
            )
    [finding] = by_check(doctor(app, GOOD), "Webhook")
    assert finding.status == Status.PROBLEM and "2 emails went out" in finding.words
    assert finding.publish is not None and "/webhooks/sendgrid" in finding.publish
    with transaction(app.engine) as session:
        session.add(
            m.ProviderEvent(
                provider="sendgrid",
                provider_event_id="e1",
                kind=m.EventKind.DELIVERED,
                raw_event="delivered",
                occurred_at=NOW - timedelta(minutes=30),
                received_at=NOW - timedelta(minutes=30),
            )
        )
    [finding] = by_check(doctor(app, GOOD), "Webhook")
    assert finding.status == Status.OK


def test_the_provider_table_is_keyed_by_transport_and_config_selectors_win(tmp_path: Path) -> None:
    assert set(PROVIDER_DNS) >= {"sendgrid", "outbox"}
    app = make_app(tmp_path, environ=ENVIRON, **{**SENDGRID, "deliverability.dkim_selectors": ["k7"]})
    zone: Zone = {**GOOD, "k7._domainkey.example.com": [("TXT", '"v=DKIM1; p=MIGfMA0"')]}
    assert [f.words for f in by_check(doctor(app, zone), "DKIM")] == [
        "a DKIM key is published at k7._domainkey.example.com."
    ]


def test_the_command_prints_each_finding_and_exits_1_on_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path, environ=ENVIRON, **SENDGRID)
    app.close()
    monkeypatch.setenv("NURTURE_SECRET_KEY", SECRET)
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    with dns_standin({}) as server:
        result = runner.invoke(
            cli,
            [
                "--config",
                str(app.config.path),
                "doctor",
                "--nameserver",
                server.address,
                "--timeout",
                "1",
                "--now",
                "2026-12-01T15:00:00Z",
            ],
        )
    assert result.exit_code == 1, result.output
    assert "[PROBLEM] SPF: example.com has no SPF record" in result.output
    assert 'publish: example.com TXT "v=spf1 include:sendgrid.net ~all"' in result.output
    assert "Traceback" not in result.output
