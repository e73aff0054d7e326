"""The default transport: every message becomes an RFC 5322 .eml file in the outbox.

Nothing leaves the machine. How the files are written and named, and how a second
write of one delivery is refused, is `outbox_files`; large batches are written by up
to two writer processes (`outbox_process`) while the pass claims and records the next ones.
`build_message` is the reference message, built with the `email` package, that the
fast writer (`mime_writer`) is tested against and that the SMTP transport sends.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from nurture.providers.base import Batch, Envelope, Outcome, apply_substitutions, ascii_address
from nurture.providers.mime_writer import POLICY, fold_list_header
from nurture.providers.outbox_files import unnamed_files_work, write_batch
from nurture.providers.outbox_process import (
    WRITER_PROCESS_FROM,
    WRITER_PROCESSES,
    WriterProcess,
    WriterUnavailable,
)

__all__ = ["POLICY", "OutboxTransport", "build_message"]

log = logging.getLogger(__name__)


def build_message(batch: Batch, envelope: Envelope, *, message_id: str | None = None) -> EmailMessage:
    """The complete MIME message one envelope of a batch stands for."""
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(batch.sender.from_name, addr_spec=batch.sender.from_email)
    message["To"] = Address(envelope.to_name or "", addr_spec=ascii_address(envelope.to_email))
    if batch.sender.reply_to:
        message["Reply-To"] = batch.sender.reply_to
    message["Subject"] = envelope.subject
    message["Date"] = format_datetime(batch.sent_at or datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=batch.sender.from_email.rpartition("@")[2])
    for name, value in envelope.headers.items():
        if name.lower().startswith("list-"):
            message.set_raw(name, fold_list_header(name, value))
        else:
            message[name] = value
    # text/plain first, then text/html: clients show the last part they can.
    message.set_content(
        apply_substitutions(batch.text, envelope.substitutions), subtype="plain", cte="quoted-printable"
    )
    message.add_alternative(
        apply_substitutions(batch.html, envelope.substitutions), subtype="html", cte="quoted-printable"
    )
    return message


class OutboxTransport:
    name = "outbox"

    def __init__(
        self, directory: Path, *, process_from: int = WRITER_PROCESS_FROM, writers: int = WRITER_PROCESSES
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        (directory / ".deliveries").mkdir(exist_ok=True)
        self._unnamed_files = unnamed_files_work(directory)
        self._process_from = process_from
        self._writers = writers
        self._processes: list[WriterProcess] = []
        # Small batches are written here, one at a time; this lock also guards the list of
        # writer processes. Each process builds a batch while another writes its files, and
        # the files of one batch at a time are written (`write_batch` takes the folder's turn).
        self._writing = threading.Lock()

    @property
    def _process(self) -> WriterProcess | None:
        """The first writer process: the one a batch goes to when none is busy."""
        return self._processes[0] if self._processes else None

    def send(self, batch: Batch) -> list[Outcome]:
        with self._writing:
            if len(batch.envelopes) < self._process_from:
                return write_batch(self.directory, batch, unnamed_files=self._unnamed_files)
            for dead in [process for process in self._processes if not process.alive()]:
                dead.stop()  # its pipes closed; the batches waiting on it are unknown
                self._processes.remove(dead)
            process = min(self._processes, key=WriterProcess.waiting, default=None)
            if process is None or (process.waiting() and len(self._processes) < self._writers):
                try:
                    process = WriterProcess(self.directory, unnamed_files=self._unnamed_files)
                except WriterUnavailable as exc:
                    if process is None:
                        # Slower, not wrong: the same files, written here.
                        log.warning("%s; this pass writes every batch in its own process", exc)
                        self._process_from = sys.maxsize
                        return write_batch(self.directory, batch, unnamed_files=self._unnamed_files)
                    self._writers = len(self._processes)  # no further one will start either
                else:
                    self._processes.append(process)
        # Outside the lock: the batch waits in the pipe while the child finishes the one before.
        return process.write(batch)

    def close(self) -> None:
        with self._writing:
            for process in self._processes:
                process.stop()
            self._processes = []
