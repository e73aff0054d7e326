"""Record: what the transport said about each email, written back to its delivery row.

A batch's outcomes are sorted as they arrive (in the thread that collected them) into
a few grouped UPDATEs: most rows of a batch get the same values. They are written
later, in the next claim's transaction (one BEGIN and COMMIT fewer per batch), or when
the pass ends. They are lost only with the process, and then the claims stay
"claimed" and provider events settle them.

- sent: status "sent" with the provider's message id; failed or skipped: with the error;
- unknown (the email may have gone out): left "claimed", so nothing resends it, with
  the error noted; provider events that overtook it are stored already, and settle it
  as it is written.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from nurture.providers.base import Outcome
from nurture.sending.claims import Claim
from nurture.sending.deliveries import settle_from_events
from nurture.store import models as m
from nurture.store.statements import Values, statements_for, update_grouped

_DELIVERIES = m.Delivery.__table__


@dataclass
class SortedOutcomes:
    """One batch's outcomes sorted into UPDATE groups, counted into the summary once written."""

    claims: int
    groups: dict[Values, list[int]] = field(default_factory=lambda: defaultdict(list))
    unknown: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # error -> delivery ids
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    by_stream: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class PendingOutcomes:
    """The outcomes of one pass not yet written, in the order they came (thread-safe)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._pending: list[SortedOutcomes] = []
        self._lock = threading.Lock()  # added by the sending threads, written by the claiming one

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, claims: Sequence[Claim], outcomes: Sequence[Outcome], *, skipped: bool = False) -> None:
        """Sort a batch's outcomes into statements now (in the calling thread); `write` writes them.
        `skipped`: not handed to the transport (consent or a stop tag was gone at the last check)."""
        sorted_ = SortedOutcomes(len(claims))
        now = self.now
        made: dict[
            tuple[str, str | None], Values
        ] = {}  # one Values per (status, detail): most rows share one

        def values_for(status: str, column: str, detail: str | None) -> Values:
            values = made.get((status, detail))
            if values is None:
                values = made[(status, detail)] = (("status", status), ("finished_at", now), (column, detail))
            return values

        by_id = {outcome.delivery_id: outcome for outcome in outcomes}
        for claim in claims:
            outcome = by_id.get(str(claim.delivery_id)) or Outcome(
                str(claim.delivery_id), "unknown", error="the transport gave no outcome"
            )
            if skipped:
                values = values_for(m.DeliveryStatus.SKIPPED, "error", outcome.error)
                sorted_.skipped += 1
            elif outcome.status == "sent":
                values = values_for(m.DeliveryStatus.SENT, "provider_message_id", outcome.provider_message_id)
                sorted_.sent += 1
                sorted_.by_stream[claim.stream] += 1
            elif outcome.status == "failed":
                values = values_for(m.DeliveryStatus.FAILED, "error", outcome.error)
                sorted_.failed += 1
            else:
                # Unknown: may have gone out. Stays claimed (stuck) so nothing resends it.
                sorted_.unknown[f"outcome unknown: {outcome.error}"].append(claim.delivery_id)
                continue
            sorted_.groups[values].append(claim.delivery_id)
        with self._lock:
            self._pending.append(sorted_)

    def write(self, session: Session) -> tuple[int, int]:
        """Write the pending outcomes in `session`: how many entries, and how many stuck claims
        events settled. Call `take` with that count once the transaction is committed."""
        with self._lock:
            pending = self._pending[:]
        settled = 0
        for entry in pending:
            update_grouped(session, _DELIVERIES, entry.groups)
            for error, ids in entry.unknown.items():
                # A provider event may have settled it already, while the request hung. Found
                # by id: the status only sorts them out (IdStatements.unindexed).
                status = statements_for(session.connection()).unindexed(m.Delivery.status)
                session.execute(
                    update(m.Delivery)
                    .where(m.Delivery.id.in_(ids), status == m.DeliveryStatus.CLAIMED)
                    .values(error=error)
                )
            if entry.unknown:
                # Events that overtook this outcome are stored already: they settle it now.
                settled += settle_from_events(
                    session, [i for ids in entry.unknown.values() for i in ids], self.now
                )
        return len(pending), settled

    def take(self, entries: int) -> list[SortedOutcomes]:
        """The first `entries`, now committed, off the pending list."""
        with self._lock:
            written, self._pending[:entries] = self._pending[:entries], []
        return written
