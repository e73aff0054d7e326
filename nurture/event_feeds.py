"""Provider events nurture fetches rather than receives: SES's SQS queue and SMTP bounce mail.

Each feed reads what is waiting, turns it into `NormalizedEvent`s with the provider's
own module, stores them with `nurture.provider_events.store_events` (stored once,
settling and suppressing as for every provider) and only then acknowledges what it
read (deletes the SQS messages, marks the bounce mail seen). A process stopped in
between acknowledges nothing: the next run reads the same messages again and their
events, whose ids come from their content, are not stored twice.

`nurture events poll` and `nurture bounces fetch` run these for cron; `nurture run`
polls the queue after every tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from nurture.app import App
from nurture.errors import ConfigError, MalformedEvent
from nurture.provider_events import WebhookReport, store_events
from nurture.providers.base import NormalizedEvent
from nurture.providers.ses import events as ses_events
from nurture.providers.smtp import bounces as smtp_bounces
from nurture.providers.smtp.mailbox import BounceBox, ImapBox, MaildirBox

log = logging.getLogger(__name__)


def poll_ses_queue(
    app: App,
    now: Callable[[], datetime],
    *,
    wait_seconds: int = 20,
    stop: threading.Event | None = None,
    max_rounds: int | None = None,
) -> WebhookReport:
    """Read the SES events queue until it is empty (or `stop` is set, or `max_rounds` receives)."""
    settings = app.config.ses
    if not settings.events_queue_url or not settings.region:
        raise ConfigError(
            f"{app.config.where('ses', 'events_queue_url')}: ses.events_queue_url and ses.region must be set "
            "to poll SES events (the SQS queue subscribed to the configuration set's SNS topic; "
            "docs/providers.md)"
        )
    secret = app.config.secrets.require_secret_key()
    # Deferred, a heavy import (boto3, ~200 ms): every `nurture run` imports this module,
    # only the installs with an SES queue need it.
    from nurture.providers.ses import queue as ses_queue

    sqs = ses_queue.client(settings.region, app.config.delivery.request_timeout)
    report = WebhookReport(ses_events.PROVIDER)
    rounds = 0
    while not (stop is not None and stop.is_set()) and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        messages = ses_queue.receive(sqs, settings.events_queue_url, settings.sns_topic_arn, wait_seconds)
        if not messages:
            break
        normalized: list[NormalizedEvent] = []
        for message in messages:
            if message.problem:
                report.malformed += 1
                log.warning("ses queue: a message skipped: %s", message.problem)
            for record in message.records:
                report.received += 1
                try:
                    normalized.extend(ses_events.normalize_record(record, secret))
                except (MalformedEvent, ValueError, TypeError, OverflowError) as exc:
                    report.malformed += 1
                    log.warning("ses queue: a record skipped (%s)", type(exc).__name__)
        # Stored (committed) first; deleted only then.
        round_report = store_events(app, WebhookReport(ses_events.PROVIDER), normalized, now())
        _add(report, round_report)
        ses_queue.delete(sqs, settings.events_queue_url, messages)
    if report.received or report.malformed:
        log.info("%s", report.line().replace("webhook", "queue"))
    return report


def open_bounce_box(app: App) -> BounceBox:
    smtp = app.config.smtp
    if smtp.bounces_maildir is not None:
        path = smtp.bounces_maildir
        return MaildirBox(path if path.is_absolute() else app.config.base_dir / path)
    if smtp.bounces_imap_host:
        password = app.config.secrets.bounces_imap_password
        if not smtp.bounces_imap_username or not password:
            raise ConfigError(
                f"{app.config.where('smtp', 'bounces_imap_host')}: the bounce mailbox needs "
                "smtp.bounces_imap_username and NURTURE_BOUNCES_IMAP_PASSWORD"
            )
        return ImapBox(
            smtp.bounces_imap_host,
            smtp.bounces_imap_port,
            smtp.bounces_imap_username,
            password,
            smtp.bounces_imap_folder,
        )
    raise ConfigError(
        f"{app.config.where('smtp')}: set smtp.bounces_maildir (a local Maildir) or smtp.bounces_imap_host "
        "(an IMAP mailbox over TLS) to read bounce mail (docs/providers.md)"
    )


def fetch_bounces(app: App, now: Callable[[], datetime], *, chunk: int = 200) -> WebhookReport:
    """Apply every unseen bounce in the bounce mailbox, then mark those messages seen."""
    keys = app.config.secrets.verification_keys()
    box = open_bounce_box(app)
    report = WebhookReport(smtp_bounces.PROVIDER)
    try:
        pending: list[str] = []
        events: list[NormalizedEvent] = []
        for key, raw in box.unseen():
            report.received += 1
            try:
                events.extend(smtp_bounces.normalize_bounce(raw, keys, now()))
            except MalformedEvent as exc:
                report.malformed += 1
                log.info("bounce mailbox: a message skipped: %s", exc)
            pending.append(key)
            if len(pending) >= chunk:
                _apply(app, report, events, pending, box, now())
                pending, events = [], []
        _apply(app, report, events, pending, box, now())
    finally:
        box.close()
    if report.received:
        log.info("%s", report.line().replace("webhook", "bounce mail"))
    return report


def _apply(
    app: App,
    report: WebhookReport,
    events: list[NormalizedEvent],
    keys: list[str],
    box: BounceBox,
    now: datetime,
) -> None:
    # Stored (committed) first; marked seen only then.
    if events:
        _add(report, store_events(app, WebhookReport(smtp_bounces.PROVIDER), events, now))
    if keys:
        box.mark_seen(keys)


def _add(total: WebhookReport, part: WebhookReport) -> None:
    total.stored += part.stored
    total.duplicates += part.duplicates
    total.suppressed += part.suppressed
    total.settled += part.settled
    for kind, count in part.kinds.items():
        total.kinds[kind] = total.kinds.get(kind, 0) + count
