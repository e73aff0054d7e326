"""Writing a batch's emails as files in the outbox folder: the part of the outbox that
runs wherever the files are written (in the pass for small batches, in the writer
process for large ones: `outbox_process`).

Files are written whole before they get a name (as a file without a name where the
system has O_TMPFILE, else under a temporary name). Writing the same delivery twice is
refused, so a double send would show up as an error instead of hiding in a second file.
The refusal rests on a hard link named by delivery id alone in `.deliveries/` (the
visible name holds the time, which differs from one pass to the next).

A file is named for when it was sent, which email it is and its delivery:
`20261126T140000Z-kap-intro-step3-42.eml` (one-off emails without a stream, such as
the confirmation, are `20261126T140000Z-confirm-....eml`). The names sort by time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import make_msgid
from pathlib import Path

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Outcome
from nurture.providers.mime_writer import BatchWriter

__all__ = ["unnamed_files_work", "write_batch"]


# What a file name keeps of a stream or delivery id: letters, digits, "-" and "_" (`\w` is
# str.isalnum() and "_"); anything else becomes "_".
_UNSAFE = re.compile(r"[^\w-]")


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)


def _write_all_of(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a regular file takes it all at once, save on a full disk
        view = view[os.write(fd, view) :]


def _name_or_unclaim(claims: int, claim: str, give_name: Callable[[], None]) -> None:
    """The visible name, or (when the file system refuses it) no claim either: an email that
    failed is then nowhere in the outbox, and its next try is not refused."""
    try:
        give_name()
    except OSError:
        os.unlink(claim, dir_fd=claims)
        raise


class _AlreadyWritten(Exception):
    """The outbox already holds this delivery."""


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# os.open with its own flags: three system calls a file, where Path.write_bytes makes six.
_NAMED_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_UNNAMED_FLAGS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC


def unnamed_files_work(directory: Path) -> bool:
    """Whether this system makes files without a name in `directory` and names them through
    /proc (Linux with O_TMPFILE on a file system that has it, such as ext4, xfs, btrfs, tmpfs)."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return False
    folder = os.open(directory, _FOLDER_FLAGS)
    try:
        fd = os.open(".", _UNNAMED_FLAGS, 0o666, dir_fd=folder)
    except OSError:  # EOPNOTSUPP or EISDIR where the file system or kernel lacks it
        return False
    finally:
        os.close(folder)
    os.close(fd)
    return True


def write_batch(directory: Path, batch: Batch, *, unnamed_files: bool) -> list[Outcome]:
    """Every email of `batch` as a file in `directory`, in this process; one Outcome each."""
    sent_at = batch.sent_at or datetime.now(UTC)
    writer = BatchWriter(batch if batch.sent_at else replace(batch, sent_at=sent_at))
    # One key per batch, as SendGrid gives one X-Message-Id per request: the ledger then
    # records each batch's outcome in one statement instead of one per email. Each
    # file's Message-ID is that key and its delivery id, so it is still unique.
    batch_key = make_msgid(domain=batch.sender.from_email.rpartition("@")[2]).strip("<>")
    stamp = _stamp(sent_at)
    outcomes: list[Outcome] = []
    key_local, _, key_domain = batch_key.rpartition("@")
    # Names relative to open folders: the kernel looks up one name per call, not a path.
    try:
        folder = os.open(directory, _FOLDER_FLAGS)
    except OSError as exc:
        raise FatalTransportError(f"the outbox folder {directory} cannot be opened: {exc.strerror}") from exc
    try:
        claims = os.open(directory / ".deliveries", _FOLDER_FLAGS)
    except OSError as exc:
        os.close(folder)
        raise FatalTransportError(
            f"the outbox folder {directory} has no usable .deliveries folder: {exc.strerror}"
        ) from exc
    put = _put_unnamed if unnamed_files else _put_renamed
    prefixes: dict[tuple[str | None, int | None], str] = {}  # a file name's start, by stream and step
    try:
        # Every email is built before the first is written: a message that cannot be built
        # (ValueError) then refuses the batch with nothing of it in the outbox, and a second
        # writer process builds its batch while this one's files are written.
        messages: list[tuple[Envelope, str, str, bytes]] = []
        for envelope in batch.envelopes:
            safe_id = _safe(envelope.delivery_id)
            data = writer.message(envelope, f"<{key_local}.{safe_id}@{key_domain}>")
            prefix = prefixes.get((envelope.stream, envelope.step))
            if prefix is None:
                prefix = prefixes[envelope.stream, envelope.step] = _file_prefix(stamp, envelope)
            messages.append((envelope, safe_id, f"{prefix}{safe_id}.eml", data))
        # The folder's turn: one writer's files at a time. Writers side by side in one folder
        # only contend in the kernel for its lock; the turn ends when the folder is closed.
        # A folder that cannot be locked (some network file systems) is written all the same.
        with contextlib.suppress(OSError):
            fcntl.flock(folder, fcntl.LOCK_EX)
        for envelope, safe_id, name, data in messages:
            try:
                put(folder, claims, f"{safe_id}.eml", name, data)
            except _AlreadyWritten:
                outcomes.append(
                    Outcome(
                        envelope.delivery_id,
                        "failed",
                        error=f"outbox already holds delivery {envelope.delivery_id}",
                    )
                )
                continue
            except OSError as exc:
                if not outcomes:
                    # Nothing of this batch was written: no later request will fare better.
                    raise FatalTransportError(
                        f"the outbox folder {directory} cannot be written: {exc.strerror}"
                    ) from exc
                outcomes.append(Outcome(envelope.delivery_id, "failed", error=f"not written: {exc.strerror}"))
                continue
            outcomes.append(Outcome(envelope.delivery_id, "sent", provider_message_id=batch_key))
    finally:
        os.close(claims)
        os.close(folder)
    return outcomes


def _put_unnamed(folder: int, claims: int, claim: str, name: str, data: bytes) -> None:
    """Written whole as a file without a name, then given the claim's name and the visible
    one: two directory entries per email, and a crash mid-write leaves nothing behind (the
    kernel frees a file that never got a name)."""
    fd = os.open(".", _UNNAMED_FLAGS, 0o666, dir_fd=folder)
    try:
        _write_all_of(fd, data)
        try:
            # linkat refuses an existing name: a second write of one delivery is refused.
            os.link(f"/proc/self/fd/{fd}", claim, src_dir_fd=claims, dst_dir_fd=claims)
        except FileExistsError:
            raise _AlreadyWritten from None
    finally:
        os.close(fd)
    _name_or_unclaim(claims, claim, lambda: os.link(claim, name, src_dir_fd=claims, dst_dir_fd=folder))


def _put_renamed(folder: int, claims: int, claim: str, name: str, data: bytes) -> None:
    """Where a file cannot be made without a name (no O_TMPFILE): written whole under a
    temporary name, linked as the claim, then renamed. Not written straight under the
    claim's name: a crash mid-write would leave a claim holding half an email, which would
    refuse the delivery's next try for good while no email of it is in the outbox."""
    temp = f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(temp, _NAMED_FLAGS, 0o666, dir_fd=folder)
        try:
            _write_all_of(fd, data)
        finally:
            os.close(fd)
        try:
            os.link(temp, claim, src_dir_fd=folder, dst_dir_fd=claims)
        except FileExistsError:
            raise _AlreadyWritten from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=folder)
        raise
    # The temporary name becomes the visible one in one step. The claim, not this, refuses
    # a second write.
    try:
        _name_or_unclaim(claims, claim, lambda: os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder))
    except OSError:
        os.unlink(temp, dir_fd=folder)
        raise


def _stamp(sent_at: datetime) -> str:
    return sent_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _file_prefix(stamp: str, envelope: Envelope) -> str:
    """`20261126T140000Z-kap-intro-step3-` of `20261126T140000Z-kap-intro-step3-42.eml`:
    when and which email; the delivery's id follows."""
    if not envelope.stream:
        return f"{stamp}-"
    if envelope.step is None:
        return f"{stamp}-{_safe(envelope.stream)}-"
    return f"{stamp}-{_safe(envelope.stream)}-step{envelope.step}-"
