"""The transport seam: what the sender hands to a transport and what it gets back.

A `Batch` is one step's content for up to `batch_size` recipients. The content is
shared: per-recipient values travel as `substitutions` (tag -> value) that the
transport applies (outbox) or hands to the provider (SendGrid personalizations).
This is what lets one SendGrid request carry a thousand personalized emails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import idna

from nurture.errors import FatalTransportError

if TYPE_CHECKING:  # not at run time: the outbox's writer process starts without the store's models
    from nurture.store.models import ConsentKind, EventKind


@dataclass(frozen=True)
class Sender:
    from_email: str
    from_name: str
    reply_to: str | None = None


_NONE: Mapping[str, str] = MappingProxyType({})


class Envelope(NamedTuple):
    """One recipient of a batch.

    `delivery_id` is ours (a string); it is echoed back in `custom_args` so that
    provider events find their delivery. `custom_args` hold opaque ids only: no
    personal data, no campaign or stream names, no tags, no consent details.
    `stream` and `step` say locally which email this is (outbox file names, rehearsal
    listings); no transport hands them to a provider.

    A named tuple, not a frozen dataclass: a pass makes one per email, and a tuple is
    built several times faster. Change one with `envelope._replace(subject=...)`.
    """

    delivery_id: str
    to_email: str
    to_name: str | None
    subject: str
    headers: Mapping[str, str] = _NONE
    substitutions: Mapping[str, str] = _NONE
    custom_args: Mapping[str, str] = _NONE
    stream: str = ""
    step: int | None = None


@dataclass(frozen=True)
class Batch:
    sender: Sender
    text: str  # plain-text body with substitution tags
    html: str  # HTML body with substitution tags (values for HTML tags arrive escaped)
    envelopes: Sequence[Envelope]
    categories: Sequence[str] = ()
    transactional: bool = False
    sent_at: datetime | None = None  # the pass's `now` (the outbox's Date:); None: the wall clock


OutcomeStatus = Literal["sent", "failed", "unknown"]


class Outcome(NamedTuple):
    """What happened to one envelope (a named tuple: one per email, built cheaply).

    "unknown" means the request may or may not have been delivered (a read timeout
    after the body went out): the delivery must not be retried automatically.
    """

    delivery_id: str
    status: OutcomeStatus
    provider_message_id: str | None = None
    error: str | None = None


def ascii_address(address: str) -> str:
    """`address` with its domain in ASCII (IDNA) form: user@bücher.example -> user@xn--bcher-kva.example.

    Providers and SMTP without the SMTPUTF8 extension take ASCII domains only. The local
    part is left as it is: signup and import refuse a non-ASCII one.
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:
        return address  # not a valid IDN: the provider's answer will say so for this address


def apply_substitutions(content: str, substitutions: Mapping[str, str]) -> str:
    """Replace each tag by its value, as SendGrid does with `substitutions`."""
    for tag, value in substitutions.items():
        content = content.replace(tag, value)
    return content


class Transport(Protocol):
    """Sends batches. `send` must be safe to call from several threads at once.

    It returns one Outcome per envelope, in any order. It raises
    `FatalTransportError` when no further request can succeed (bad API key).
    """

    name: str

    def send(self, batch: Batch) -> list[Outcome]: ...

    def close(self) -> None: ...


class StoppedMidBatch(FatalTransportError):
    """No further request can succeed, and some of this batch was already handed over.

    A transport that sends one request per message (SES, SMTP) can learn mid-batch that
    the account is paused: `outcomes` say what happened to the envelopes it handed over
    (recorded as usual); every other envelope of the batch was never handed over, so its
    claim is released, exactly as for a plain FatalTransportError.
    """

    def __init__(self, message: str, outcomes: Sequence[Outcome]) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes)


# ---------------------------------------------------------------- events from a provider


@dataclass(frozen=True)
class NormalizedEvent:
    """One provider event in our terms, ready to store: what a provider's webhook module
    makes of each event it receives (nurture.provider_events stores it)."""

    provider_event_id: str
    kind: EventKind
    raw_event: str  # the provider's own name for it, kept for the record
    # From the message's custom args: our message key (or, for an email sent before keys
    # existed, the numeric row id); not yet checked against the store.
    delivery_ref: str | None
    stream: str | None
    step: int | None
    occurred_at: datetime
    detail: str | None  # already scrubbed
    suppress: ConsentKind | None  # BOUNCE / COMPLAINT / UNSUBSCRIBE, or None
    email: str | None = field(default=None, repr=False)  # only to find the subscriber; never stored


# The message key nurture puts in every email's custom data (Delivery.message_key): a
# random prefix and the id of the row it was claimed from. Never all digits, so never
# mistaken for the plain row id that emails claimed before keys existed carry.
MESSAGE_KEY = re.compile(r"k[0-9a-f]{16}-[0-9]{1,19}", re.ASCII)
_ROW_ID = re.compile(r"[0-9]{1,19}", re.ASCII)


def delivery_ref(value: Any) -> str | None:
    """What an event's custom data names: a message key, or an older email's row id (as
    text); anything else names no delivery. Every provider's event module uses this."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if MESSAGE_KEY.fullmatch(text):
        return text
    if _ROW_ID.fullmatch(text) and 0 < int(text) < 2**63:
        return str(int(text))
    return None
