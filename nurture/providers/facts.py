"""What the rest of nurture may know about a provider, in one place per provider.

Settling and releasing stuck deliveries depend on how a provider reports back: how
long it keeps retrying an event post (so how long silence proves nothing) and
whether it reports events at all. Those facts live here, keyed by the transport's
name (`delivery.transport`, also stored on each delivery), so the reconciliation
code never branches on a provider's name.

A provider's folder adds its entry to `FACTS`; nothing else needs to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ProviderFacts:
    name: str
    # Reports what happened to each email (a webhook, a queue, bounce mail). Without
    # events, an unknown outcome can only be settled by the owner.
    reports_events: bool
    # The longest a provider keeps retrying one event delivery to us. Silence about
    # an email proves nothing until this long after the email was handed over.
    event_retry_window: timedelta


FACTS: dict[str, ProviderFacts] = {
    # SendGrid retries a failing Event Webhook post for up to 24 hours.
    "sendgrid": ProviderFacts("sendgrid", reports_events=True, event_retry_window=timedelta(hours=24)),
    # Amazon SES publishes each event through the configuration set to SNS within
    # seconds. SNS retries an HTTPS endpoint for at most one hour; to an SQS queue it
    # retries far longer, and the queue then keeps messages up to 14 days, so a stopped
    # poller's silence proves nothing until it has read the queue again. Messages in a
    # standard queue may come out of order, and SES's own DeliveryDelay and soft-bounce
    # records can trail the Send record by hours: 24 hours, as for SendGrid, covers the
    # hour of HTTPS retries and those delays with a wide margin.
    "ses": ProviderFacts("ses", reports_events=True, event_retry_window=timedelta(hours=24)),
    # An SMTP relay answers 250 and reports nothing more; only failures come back, as
    # bounce mail, and a relay keeps retrying a message for up to five days (Postfix's
    # maximal_queue_lifetime) before it bounces it. Silence never proves an email was not
    # queued, so an unknown outcome (the connection lost after the data) is settled by a
    # bounce that names it or by the owner, never released by time alone.
    "smtp": ProviderFacts("smtp", reports_events=False, event_retry_window=timedelta(days=5)),
    # Files on disk: an email is either written or not; there are no events.
    "outbox": ProviderFacts("outbox", reports_events=False, event_retry_window=timedelta(0)),
}

# An unknown name gets the most careful facts: events may come, and late.
_CAREFUL = ProviderFacts("unknown", reports_events=True, event_retry_window=timedelta(hours=72))


def facts_for(transport: str | None) -> ProviderFacts:
    """The facts for a transport name; unknown names get conservative facts."""
    if transport is None:
        return _CAREFUL
    return FACTS.get(transport, _CAREFUL)
