"""What each provider needs in the sending domain's DNS, keyed by `delivery.transport`.

A new provider adds one row: the SPF include its servers are listed under, the DKIM
selectors it publishes by default, and how its records look, in words the owner can
match against the provider's own settings page. `deliverability.dkim_selectors` in
config.yaml overrides the selectors (custom ones, or providers like SES whose
selectors are random per domain).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nurture.config import Config


@dataclass(frozen=True)
class ProviderDns:
    name: str
    sends: bool  # False for a transport that sends nothing (the outbox): DNS is checked, but not for it
    spf_include: str | None  # the domain its SPF include: names, e.g. sendgrid.net
    dkim_selectors: tuple[str, ...]  # looked up as <selector>._domainkey.<From domain>
    dkim_record: str  # how its DKIM records look, for the finding's "publish" line
    return_path: str  # how its MAIL FROM / Return-Path domain is set up
    settings_page: str  # where in the provider's site the exact records are shown


PROVIDER_DNS: dict[str, ProviderDns] = {
    "sendgrid": ProviderDns(
        name="SendGrid",
        sends=True,
        spf_include="sendgrid.net",
        dkim_selectors=("s1", "s2"),
        dkim_record="{selector}._domainkey.{domain} CNAME {selector}.domainkey.u1234567.wl123.sendgrid.net",
        return_path="em1234.{domain} CNAME u1234567.wl123.sendgrid.net (with automated security on)",
        settings_page="SendGrid: Settings > Sender Authentication > Authenticate Your Domain",
    ),
    # SES's Easy DKIM publishes three CNAMEs whose selectors are random per domain: the owner
    # copies them into deliverability.dkim_selectors. Its custom MAIL FROM domain (a
    # subdomain with an MX to SES's feedback endpoint) is what aligns SPF for DMARC.
    "ses": ProviderDns(
        name="Amazon SES",
        sends=True,
        spf_include="amazonses.com",
        dkim_selectors=(),
        dkim_record="{selector}._domainkey.{domain} CNAME {selector}.dkim.amazonses.com",
        return_path=(
            "mail.{domain} MX 10 feedback-smtp.<region>.amazonses.com and "
            'mail.{domain} TXT "v=spf1 include:amazonses.com ~all" (custom MAIL FROM domain)'
        ),
        settings_page="SES console: Configuration > Identities > your domain > Authentication",
    ),
    # A relay's own records (Paubox, LuxSci, Postmark, Mailgun, your Postfix) differ from
    # one to the next: SPF include, DKIM selectors and bounce domain come from its setup page.
    "smtp": ProviderDns(
        name="your SMTP relay",
        sends=True,
        spf_include=None,
        dkim_selectors=(),
        dkim_record="{selector}._domainkey.{domain} (TXT or CNAME, as your relay shows it)",
        return_path="smtp.bounce_domain: an MX to the mailbox that `nurture bounces fetch` reads",
        settings_page="your relay's domain or sender authentication page (docs/providers.md)",
    ),
    "outbox": ProviderDns(
        name="the outbox (it writes files and sends nothing)",
        sends=False,
        spf_include=None,
        dkim_selectors=(),
        dkim_record="{selector}._domainkey.{domain} (as your provider shows it)",
        return_path="as your provider shows it",
        settings_page="your email provider's domain authentication page",
    ),
}


def expectations(config: Config) -> ProviderDns:
    """The row of the configured transport, with config's own DKIM selectors if any."""
    transport = config.delivery.transport
    row = PROVIDER_DNS.get(transport) or replace(PROVIDER_DNS["outbox"], name=transport, sends=True)
    selectors = config.deliverability.dkim_selectors
    return replace(row, dkim_selectors=selectors) if selectors else row
