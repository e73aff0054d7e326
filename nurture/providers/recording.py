"""A transport that sends nothing and remembers what it was given (simulate, dry runs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from nurture.providers.base import Batch, Outcome


@dataclass(frozen=True)
class Recorded:
    delivery_id: str
    to_email: str
    subject: str
    stream: str
    step: str


class RecordingTransport:
    name = "rehearsal"

    def __init__(self) -> None:
        self.sent: list[Recorded] = []
        self._lock = threading.Lock()

    def send(self, batch: Batch) -> list[Outcome]:
        records = [
            Recorded(e.delivery_id, e.to_email, e.subject, e.stream, "" if e.step is None else str(e.step))
            for e in batch.envelopes
        ]
        with self._lock:
            self.sent.extend(records)
        return [Outcome(record.delivery_id, "sent", provider_message_id="rehearsal") for record in records]

    def take(self) -> list[Recorded]:
        with self._lock:
            taken, self.sent = self.sent, []
        return taken

    def close(self) -> None:
        pass
