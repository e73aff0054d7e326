"""Where bounce mail waits: a local Maildir, or an IMAP mailbox over TLS.

Both give back (key, raw bytes) for each message not yet marked seen, and mark a message
seen once the caller has stored what it says. A message is never deleted: the mailbox
keeps the evidence, and marking it seen only saves reading it again (reading it again
stores nothing twice anyway).
"""

from __future__ import annotations

import imaplib
import mailbox
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from nurture.errors import ConfigError


class BounceBox(Protocol):
    def unseen(self) -> Iterator[tuple[str, bytes]]: ...

    def mark_seen(self, keys: list[str]) -> None: ...

    def close(self) -> None: ...


class MaildirBox:
    def __init__(self, path: Path) -> None:
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise ConfigError(
                f"smtp.bounces_maildir: {path} is not a Maildir (it needs new/ and cur/ folders)"
            )
        self._box = mailbox.Maildir(path, create=False)

    def unseen(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self._box.keys()):
            try:
                message = self._box.get_message(key)
            except (KeyError, FileNotFoundError):
                continue  # taken away meanwhile (another reader, the owner's mail client)
            if "S" in message.get_flags():
                continue
            yield key, self._box.get_bytes(key)

    def mark_seen(self, keys: list[str]) -> None:
        for key in keys:
            try:
                message = self._box.get_message(key)
            except (KeyError, FileNotFoundError):
                continue
            message.set_subdir("cur")
            message.add_flag("S")
            self._box[key] = message

    def close(self) -> None:
        self._box.close()


class ImapBox:
    """An IMAP mailbox over implicit TLS (port 993), the certificate verified."""

    def __init__(self, host: str, port: int, username: str, password: str, folder: str) -> None:
        self._imap = imaplib.IMAP4_SSL(host, port, ssl_context=ssl.create_default_context(), timeout=30)
        try:
            self._imap.login(username, password)
        except imaplib.IMAP4.error:
            self._imap.logout()
            raise ConfigError(
                "the bounce mailbox refused the login: check smtp.bounces_imap_username and "
                "NURTURE_BOUNCES_IMAP_PASSWORD"
            ) from None
        status, _ = self._imap.select(folder)
        if status != "OK":
            raise ConfigError(f"smtp.bounces_imap_folder: the mailbox has no folder {folder!r}")

    def unseen(self) -> Iterator[tuple[str, bytes]]:
        status, data = self._imap.uid("SEARCH", "UNSEEN")
        if status != "OK" or not data or not data[0]:
            return
        for uid in data[0].split():
            status, parts = self._imap.uid("FETCH", uid, "(BODY.PEEK[])")
            if status != "OK":
                continue
            for part in parts:
                if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
                    yield uid.decode(), part[1]
                    break

    def mark_seen(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 200):
            self._imap.uid("STORE", ",".join(keys[start : start + 200]), "+FLAGS", "(\\Seen)")

    def close(self) -> None:
        try:
            self._imap.close()
        finally:
            self._imap.logout()
