"""`nurture doctor` and the console's Inbox page: is everything in place for the practice's
mail to reach inboxes?

- DNS (nurture.deliverability.records): SPF names the provider, DKIM keys are published
  for its selectors, DMARC has a policy and the Return-Path is aligned with the From
  domain, the Return-Path domain exists, and the reply-to address can receive mail;
- the web: web.public_base_url answers over https (with a valid certificate), and
  the RFC 8058 one-click unsubscribe works end to end against the running app: a
  POST of `List-Unsubscribe=One-Click` as mailbox providers send it, to a test-copy
  link, which unsubscribes nobody, answered 200 with no redirect;
- the provider's events: while emails went out in the last 24 hours, the webhook
  has delivered events in that time too.

Every finding says, in plain words, what was found, why it matters and what to publish.
Nothing here changes the store.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from nurture import links
from nurture.app import App
from nurture.deliverability import DEFAULT_TIMEOUT
from nurture.deliverability.dns_lookup import Lookup
from nurture.deliverability.provider_dns import expectations
from nurture.deliverability.records import (
    Finding,
    Status,
    check_dkim,
    check_dmarc,
    check_mx,
    check_return_path,
    check_spf,
    domain_of,
)
from nurture.store import models as m
from nurture.store.db import reading

WEBHOOK_WINDOW = timedelta(hours=24)
BOUNDARY = "nurture-doctor-boundary"


@dataclass(frozen=True)
class DoctorOptions:
    """How the doctor reaches the world: name servers ("host:port"; empty: the system's),
    the seconds allowed per look-up or request, and a CA file to trust for https (tests)."""

    nameservers: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == Status.PROBLEM]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def summary(self) -> str:
        warnings = sum(finding.status == Status.WARN for finding in self.findings)
        if self.problems:
            return f"{len(self.problems)} problem(s) to fix, {warnings} to look at"
        if warnings:
            return f"no problem; {warnings} to look at"
        return "all good"

    def render(self) -> str:
        return "\n".join([*(line for finding in self.findings for line in finding.lines()), self.summary()])


def run_doctor(app: App, now: datetime, options: DoctorOptions | None = None) -> DoctorReport:
    options = options or DoctorOptions()
    config = app.config
    lookup = Lookup(options.nameservers, options.timeout)
    provider = expectations(config)
    domain = domain_of(config.sender.from_email)
    return_path = config.deliverability.return_path_domain
    report = DoctorReport()
    if not provider.sends:
        report.findings.append(
            Finding(
                "Provider",
                Status.WARN,
                f"delivery.transport is {config.delivery.transport}: {provider.name}. The checks below "
                "are for the day you send for real; the provider's own records cannot be checked yet.",
            )
        )
    report.findings += check_spf(lookup, domain, provider, return_path)
    report.findings += check_dkim(lookup, domain, provider)
    report.findings += check_dmarc(lookup, domain, return_path, config.practice.reply_to)
    report.findings += check_return_path(lookup, return_path, provider)
    report.findings += check_mx(lookup, config.practice.reply_to or config.sender.from_email)
    report.findings += check_web(app, options)
    report.findings.append(check_webhook(app, now))
    return report


# ---------------------------------------------------------------- the web


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an answer of its own here, never followed


def _open(url: str, options: DoctorOptions, *, data: bytes | None = None, headers: dict[str, str]) -> int:
    context = ssl.create_default_context(cafile=options.ca_file)
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=context))
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with opener.open(request, timeout=options.timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def check_web(app: App, options: DoctorOptions) -> list[Finding]:
    base = app.config.web.public_base_url
    if not base.startswith("https://"):
        return [
            Finding(
                "Web",
                Status.PROBLEM,
                f"web.public_base_url is {base}: the unsubscribe and preference links in every email must "
                "be https, and Gmail and Yahoo want the one-click unsubscribe over https.",
                "web.public_base_url: https://mail.<your domain> (behind a TLS proxy; see docs/deploy.md)",
            ),
            Finding("One-click", Status.SKIPPED, "not tried: the site is not on https yet."),
        ]
    findings = []
    try:
        status = _open(f"{base}/healthz", options, headers={"User-Agent": "nurture-doctor"})
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [
            Finding(
                "Web",
                Status.PROBLEM,
                f"{base} does not answer over https ({reason}). Is `nurture serve` running behind the TLS "
                "proxy, with a valid certificate?",
            ),
            Finding("One-click", Status.SKIPPED, "not tried: the site does not answer."),
        ]
    if status != 200:
        findings.append(
            Finding(
                "Web", Status.PROBLEM, f"{base}/healthz answered {status}, not 200: check `nurture serve`."
            )
        )
    else:
        findings.append(Finding("Web", Status.OK, f"{base} answers over https with a valid certificate."))
    findings.append(check_one_click(app, options))
    return findings


def check_one_click(app: App, options: DoctorOptions) -> Finding:
    """A mailbox provider's one-click POST (RFC 8058), to a test copy's link: it unsubscribes nobody."""
    url = links.test_copy_unsubscribe_url(app.config)
    body = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "User-Agent": "nurture-doctor"}
    try:
        status = _open(url, options, data=body, headers=headers)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Finding(
            "One-click", Status.PROBLEM, f"the one-click POST failed: {getattr(exc, 'reason', exc)}."
        )
    if status == 200:
        return Finding(
            "One-click",
            Status.OK,
            "a one-click unsubscribe POST (RFC 8058, as Gmail and Yahoo send it) "
            "is answered 200 with no redirect.",
        )
    what = "a redirect" if 300 <= status < 400 else f"status {status}"
    return Finding(
        "One-click",
        Status.PROBLEM,
        f"a one-click unsubscribe POST got {what} instead of 200: mailbox providers then show no "
        "unsubscribe button, or count it as failed. Check that the proxy passes POST /unsubscribe/... "
        "to `nurture serve` unchanged.",
    )


# ---------------------------------------------------------------- the provider's events


def check_webhook(app: App, now: datetime) -> Finding:
    provider = expectations(app.config)
    if not provider.sends:
        return Finding("Webhook", Status.SKIPPED, "the outbox has no events to report.")
    since = now - WEBHOOK_WINDOW
    with reading(app.engine) as session:
        sent = int(
            session.scalar(
                select(func.count())
                .select_from(m.Delivery)
                .where(m.Delivery.status == m.DeliveryStatus.SENT, m.Delivery.claimed_at >= since)
            )
            or 0
        )
        heard = int(
            session.scalar(
                select(func.count()).select_from(m.ProviderEvent).where(m.ProviderEvent.received_at >= since)
            )
            or 0
        )
    if not sent:
        return Finding(
            "Webhook", Status.SKIPPED, "no email went out in the last 24 hours: nothing to hear about."
        )
    if heard:
        return Finding(
            "Webhook",
            Status.OK,
            f"{heard} events arrived from {provider.name} in the last 24 hours, for the {sent} emails sent.",
        )
    return Finding(
        "Webhook",
        Status.PROBLEM,
        f"{sent} emails went out in the last 24 hours but no event came back from {provider.name}: bounces "
        "and complaints are not being recorded, so nobody who bounced or complained is taken off the list.",
        f"the Event Webhook in {provider.settings_page.split(':')[0]}, pointing at "
        f"{app.config.web.public_base_url}/webhooks/{app.config.delivery.transport}",
    )
