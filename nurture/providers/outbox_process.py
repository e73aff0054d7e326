"""The outbox's writer process: where a large batch's files are built and written.

A pass is one Python process, and everything it does in Python takes turns on one lock
(the GIL): claiming, the ledger, and, for the outbox, building every email and four
system calls a file. Through SendGrid the building happens on the provider's machines;
here a second process plays that part, so the pass claims and records the next batches
on one core while the emails of this one are written on the other. The writers run at
a lower priority than their pass (WRITER_NICENESS), so that an owner's command run
meanwhile is not starved of CPU.

Nothing of the pass's rules moves here. The pass claims a batch, marks it handed over
and records what comes back, exactly as for a provider; this process only writes files,
with the same refusal of a second write of one delivery (`outbox_files.write_batch`, the
very code that writes small batches in the pass's own process).

The two talk over the child's stdin and stdout: a length, then a pickle (both ends are
this package; nothing else writes to the pipes). The child ignores SIGINT and SIGTERM,
since a Ctrl-C or a stop reaches the whole process group and the pass finishes the
batches it handed over before it stops; it exits when its stdin closes, which is also
what happens when the pass is killed.
"""

from __future__ import annotations

import contextlib
import copyreg
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from nurture.errors import FatalTransportError, TransportError
from nurture.providers.base import Batch, Envelope, Outcome
from nurture.providers.outbox_files import write_batch

# Batches with fewer emails are written in the pass's own process: a confirmation or an
# owner's notice should not wait for a process to start.
WRITER_PROCESS_FROM = 50
# Writer processes per pass, at most: a second one starts when a batch comes while the
# first is busy, and builds that batch while the first writes its files.
WRITER_PROCESSES = 2
# How much lower the writers' CPU priority is than their pass's (os.nice). With both cores
# busy, an owner's command run during a large pass (`nurture subscribers list`) took 1.5
# to 1.8 times as long as alone; at this niceness 1.05 to 1.15 times, and a pass nobody
# competes with loses 2 to 3% (benchmarks/RESULTS.md).
WRITER_NICENESS = 10

_LENGTH = struct.Struct("!Q")
# The interpreter the child runs on. Where it is not a Python that can import this package
# (a frozen bundle, say), the child never says it is ready and the pass writes every batch
# in its own process instead.
_PYTHON = sys.executable
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class _Pickler(pickle.Pickler):
    # An envelope's empty mappings are read-only views, which pickle does not take.
    dispatch_table = {**copyreg.dispatch_table, MappingProxyType: lambda view: (dict, (dict(view),))}


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _send(pipe: IO[bytes], value: object) -> None:
    data = _dumps(value)
    pipe.write(_LENGTH.pack(len(data)) + data)
    pipe.flush()


# Envelopes and outcomes cross the pipe as plain tuples: pickle writes a named tuple through
# a call to its __getnewargs__ (Python), a plain one in C. A batch of 1,000 pickled in 3.1
# instead of 5.5 ms, its outcomes in 0.2 instead of 2.8 ms.
_FlatBatch = tuple[Batch, list[tuple[Any, ...]]]


def _flat(batch: Batch) -> _FlatBatch:
    return replace(batch, envelopes=()), list(map(tuple, batch.envelopes))


def _unflat(flat: _FlatBatch) -> Batch:
    batch, envelopes = flat
    return replace(batch, envelopes=tuple(map(Envelope._make, envelopes)))


def _receive(pipe: IO[bytes]) -> Any:
    """The next value, or EOFError when the other end has gone."""
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    (length,) = _LENGTH.unpack(head)
    data = pipe.read(length)
    if len(data) < length:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - written by our own child or parent, never by anyone else


class WriterUnavailable(Exception):
    """The writer process could not be started; nothing was handed to it."""


class WriterProcess:
    """A child process that writes batches into one outbox folder, one batch at a time.

    Several threads may hand it batches at once: each is queued in the pipe as it comes
    (so the child starts the next one the moment it finishes one, not after the pass has
    read the reply and had its next thread pickle a batch), and each thread reads its own
    reply, in the order the batches went in, which is the order the child answers them.
    """

    def __init__(self, directory: Path, *, unnamed_files: bool) -> None:
        env = dict(os.environ)
        # The child imports this package as the parent did, installed or from a checkout.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        try:
            self._child = subprocess.Popen(
                [_PYTHON, "-m", __name__, str(directory), "unnamed" if unnamed_files else "renamed"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise WriterUnavailable(f"the outbox writer process could not start: {exc.strerror}") from exc
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to_child, self._from_child = self._child.stdin, self._child.stdout
        self._handing = threading.Lock()  # one batch into the pipe at a time
        self._turns = threading.Condition()  # replies read in the order the batches went in
        self._handed = self._answered = 0
        self._gone: str | None = None  # why no further reply will come
        # Ready before any batch is handed over: a child that cannot start then costs no
        # batch its outcome (a death mid-batch leaves the batch unknown).
        try:
            ready = _receive(self._from_child) == ("ready", None)
        except Exception:  # noqa: BLE001 - gone, or something else answered: either way not our writer
            ready = False
        if not ready:
            self.stop()
            raise WriterUnavailable(
                f"the outbox writer process did not start (exit status {self._child.returncode})"
            )

    @property
    def pid(self) -> int:
        return self._child.pid

    def waiting(self) -> int:
        """How many batches handed over have no reply yet."""
        return self._handed - self._answered

    def alive(self) -> bool:
        return self._child.poll() is None

    def write(self, batch: Batch) -> list[Outcome]:
        """The batch's outcomes, or the error the child met: FatalTransportError (nothing of
        the batch written), ValueError (refused before writing), TransportError (the child
        stopped mid-batch: what it wrote is unknown, so every email of it is "unknown")."""
        with self._handing:
            try:
                if self._gone is None:
                    _send(self._to_child, _flat(batch))
            except BrokenPipeError:
                self._stopped()  # nothing of this batch was read, but the pass cannot know that
            if self._gone is not None:
                raise TransportError(self._gone)
            turn = self._handed
            self._handed += 1
        with self._turns:
            self._turns.wait_for(lambda: self._answered == turn)
            try:
                # A batch handed over before the child died: it may have been written, or not.
                if self._gone is not None:
                    raise TransportError(self._gone)
                try:
                    kind, value = _receive(self._from_child)
                except EOFError:
                    raise TransportError(self._stopped()) from None
            finally:
                self._answered += 1
                self._turns.notify_all()
        if kind == "sent":
            return list(map(Outcome._make, value))
        if kind == "fatal":
            raise FatalTransportError(value)
        if kind == "refused":
            raise ValueError(value)
        raise TransportError(f"the outbox writer process failed: {value}")

    def _stopped(self) -> str:
        """Why no further reply will come: the child has gone."""
        self._gone = f"the outbox writer process stopped (exit status {self._child.wait()})"
        return self._gone

    def stop(self) -> None:
        """Ends the child's input, waits for it to leave (a kill after 10 s) and closes the pipes.
        A thread still waiting for a reply then gets a TransportError: its batch is unknown."""
        with self._handing:  # no batch is half in the pipe
            with contextlib.suppress(BrokenPipeError):  # the child is gone and left part of a batch unread
                self._to_child.close()
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            with self._turns:  # no reply is being read
                if self._gone is None:
                    self._gone = (
                        f"the outbox writer process was stopped (exit status {self._child.returncode})"
                    )
                self._close_pipes()
                self._turns.notify_all()

    def _close_pipes(self) -> None:
        for pipe in (self._to_child, self._from_child):
            with contextlib.suppress(BrokenPipeError):  # a request's buffered end the dead child never read
                pipe.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    directory, mode = Path(argv[0]), argv[1]
    with contextlib.suppress(OSError):  # a platform without priorities writes at the pass's
        os.nice(WRITER_NICENESS)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies goes to the parent's pipe
    _send(replies, ("ready", None))
    while True:
        try:
            batch = _unflat(_receive(requests))
        except EOFError:
            return 0
        reply: tuple[str, object]
        try:
            outcomes = write_batch(directory, batch, unnamed_files=mode == "unnamed")
            reply = ("sent", list(map(tuple, outcomes)))
        except FatalTransportError as exc:
            reply = ("fatal", str(exc))
        except ValueError as exc:
            reply = ("refused", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the pass, which records the batch as unknown
            reply = ("failed", f"{type(exc).__name__}: {exc}")
        try:
            _send(replies, reply)
        except BrokenPipeError:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
