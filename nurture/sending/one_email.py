"""One email now, outside the sending pass: the signup confirmation, an owner notice, a test copy.

The pass sends claimed deliveries in batches; these go one at a time when something
asks for them (a signup, a pass that found something to tell the owner, the owner's
test button). They are not deliveries: no delivery row, not in the stats. Each takes
the same path, `send_now`:

- claim: an email that must go at most once (an owner notice, per kind and period)
  comes with a `Ledger`, whose record is written and committed before anything is
  handed to the transport. A record already there means it went out (or is going out
  from another process): nothing is sent.
- render: one envelope for the recipient, from the email the caller prepared (and
  checked) before anything was claimed.
- transport: a batch of one.
- record: only "sent" counts. Anything else (failed, unknown, no outcome at all, an
  exception) gives the ledger's record back, so the next attempt sends it, and raises.
  An owner notice whose outcome is unknown is sent again rather than risk none.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from nurture import links
from nurture.addresses import normalize_email
from nurture.config import Config
from nurture.content.prepared import PreparedEmail, Recipient
from nurture.errors import InputError, NurtureError, TransportError
from nurture.providers.base import Outcome, Transport

TEST_PREFIX = "[TEST] "


class Ledger(Protocol):
    """Where an email that goes at most once is written down before it is sent."""

    def claim(self) -> bool:
        """Write the record and commit it; False when it is there already (nothing is sent)."""
        ...

    def release(self) -> None:
        """Remove the record: the email was not sent."""
        ...


def send_now(
    transport: Transport,
    prepared: PreparedEmail,
    recipient: Recipient,
    *,
    kind: str,
    label: str,
    what: str,
    error: type[NurtureError] = TransportError,
    subject_prefix: str = "",
    ledger: Ledger | None = None,
    delivery_key: str | None = None,
) -> Outcome | None:
    """Send `prepared` to `recipient` now: its outcome, or None when `ledger` has it sent already.

    `kind` is the message's one custom arg for the provider (no personal data); `label`
    begins our id for it (the outbox's file name), a random tail makes that unique (a
    store reset beside an old outbox must not meet an earlier file). When it is not
    sent, raises `error` naming `what` ("the confirmation email").
    """
    # `delivery_key`: a delivery row's message key, echoed in the provider's events (a probe's).
    custom = {"kind": kind} if delivery_key is None else {"kind": kind, "delivery_id": delivery_key}
    envelope = prepared.envelope(f"{label}-{secrets.token_hex(4)}", recipient, custom)
    if subject_prefix:
        envelope = envelope._replace(subject=subject_prefix + envelope.subject)
    batch = prepared.batch([envelope])
    if ledger is not None and not ledger.claim():
        return None
    try:
        outcomes = transport.send(batch)
    except BaseException:
        if ledger is not None:
            ledger.release()  # nothing said it went out: the next attempt sends it
        raise
    outcome = outcomes[0] if outcomes else None
    if outcome is None or outcome.status != "sent":
        if ledger is not None:
            ledger.release()
        reason = outcome.error if outcome is not None else "the transport gave no outcome"
        raise error(f"{what} could not be sent: {reason}")
    return outcome


@dataclass(frozen=True)
class SentCopy:
    to: str
    subject: str
    provider_message_id: str | None


def send_test_copy(
    transport: Transport, config: Config, prepared: PreparedEmail, to_address: str
) -> SentCopy:
    """One copy of a series email or newsletter to `to_address` (the owner's), subject prefixed "[TEST] ".

    Its unsubscribe and preference links open pages saying it is a test copy, and change nothing."""
    address, _ = normalize_email(to_address)
    recipient = Recipient(
        email=address,
        first_name=None,
        unsubscribe_url=links.test_copy_unsubscribe_url(config),
        preferences_url=links.test_copy_preferences_url(config),
    )
    outcome = send_now(
        transport,
        prepared,
        recipient,
        kind="test",
        label="test",
        what=f"the test copy to {address}",
        error=InputError,
        subject_prefix=TEST_PREFIX,
    )
    assert outcome is not None  # no ledger: None only comes from one
    return SentCopy(address, TEST_PREFIX + prepared.subject, outcome.provider_message_id)
