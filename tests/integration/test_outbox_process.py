"""The outbox's writer process: batches of WRITER_PROCESS_FROM emails or more are built and
written in a child process, with the same files and the same refusals as in the pass's
own process; a child that dies leaves its batch unknown, never half-counted; it outlives
neither a stop nor a kill of its pass."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nurture.errors import FatalTransportError, TransportError
from nurture.providers import outbox_process
from nurture.providers.base import Batch, Envelope, Outcome
from nurture.providers.outbox import OutboxTransport
from nurture.providers.outbox_process import WRITER_PROCESS_FROM
from nurture.store import models as m
from tests.support.factories import REPO, active_subscribers, at
from tests.support.outbox_files import batch_of, files, normalized
from tests.support.processes import STEP_TIMES, Project, iso, midday_zone

DELIVERY = re.compile(r"-(\d+)\.eml$")
ADDRESS = re.compile(r"[\w.+-]+@[\w.-]+")


def writer_pid(transport: OutboxTransport) -> int:
    assert transport._process is not None, "the batch went to a writer process"
    return transport._process.pid


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until(condition: Callable[[], bool], seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_large_batch_is_written_by_a_child_byte_for_byte_as_in_the_pass(tmp_path: Path) -> None:
    in_pass = OutboxTransport(tmp_path / "in-pass", process_from=10**6)
    in_child = OutboxTransport(tmp_path / "in-child", process_from=WRITER_PROCESS_FROM)
    batch = batch_of(1, WRITER_PROCESS_FROM + 10)
    try:
        here, there = in_pass.send(batch), in_child.send(batch)
        assert in_pass._process is None
        pid = writer_pid(in_child)
        assert pid != os.getpid()
    finally:
        in_child.close()
    assert [(o.delivery_id, o.status) for o in here] == [(o.delivery_id, o.status) for o in there]
    assert {o.status for o in there} == {"sent"} and all(isinstance(o, Outcome) for o in there)
    assert len({o.provider_message_id for o in there}) == 1, "one message key per batch"
    written_here, written_there = files(tmp_path / "in-pass"), files(tmp_path / "in-child")
    assert sorted(written_here) == sorted(written_there) and len(written_there) == len(batch.envelopes)
    for name, data in written_there.items():
        assert normalized(data) == normalized(written_here[name]), name
    assert wait_until(lambda: gone(pid)), "close() ends the writer process"


def test_a_batch_crosses_the_pipe_as_plain_tuples_and_comes_back_equal() -> None:
    batch = batch_of(1, 3)
    flat = outbox_process._flat(batch)
    assert all(type(row) is tuple for row in flat[1]), "no named tuple to pickle through Python"
    data = outbox_process._dumps(flat)
    assert outbox_process._unflat(pickle.loads(data)) == batch
    # An envelope's defaults are read-only views (MappingProxyType): they cross too.
    bare = dataclasses.replace(batch, envelopes=(Envelope("9", "r9@example.com", None, "Hi"),))
    assert outbox_process._unflat(pickle.loads(outbox_process._dumps(outbox_process._flat(bare)))) == bare


def test_the_writer_runs_at_a_lower_priority_than_its_pass(tmp_path: Path) -> None:
    """So that an owner's command run during a large pass gets the CPU first."""
    transport = OutboxTransport(tmp_path / "outbox", process_from=WRITER_PROCESS_FROM)
    try:
        transport.send(batch_of(1, WRITER_PROCESS_FROM))
        pid = writer_pid(transport)
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, ours + outbox_process.WRITER_NICENESS)
    finally:
        transport.close()


def test_the_writer_process_refuses_what_the_outbox_already_holds_from_either_side(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path / "outbox")
    try:
        assert {o.status for o in transport.send(batch_of(1, 3))} == {"sent"}  # in the pass
        outcomes = transport.send(batch_of(1, WRITER_PROCESS_FROM + 5))  # in the child
        writer_pid(transport)
        refused = sorted(int(o.delivery_id) for o in outcomes if o.status == "failed")
        assert refused == [1, 2, 3]
        assert all("already holds delivery" in (o.error or "") for o in outcomes if o.status == "failed")
        again = transport.send(batch_of(1, WRITER_PROCESS_FROM + 5))
        assert {o.status for o in again} == {"failed"}
    finally:
        transport.close()
    assert len(files(tmp_path / "outbox")) == WRITER_PROCESS_FROM + 5


def test_a_writer_killed_mid_batch_leaves_it_unknown_and_a_second_try_writes_each_email_once(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    big = batch_of(1, 3000, body_repeat=200)
    raised: list[BaseException] = []

    def send() -> None:
        try:
            transport.send(big)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    try:
        transport.send(batch_of(10_001, WRITER_PROCESS_FROM))  # the writer is up
        pid = writer_pid(transport)
        sending = threading.Thread(target=send)
        sending.start()
        assert wait_until(lambda: any(p.name.endswith("-1.eml") for p in outbox.iterdir()))
        os.kill(pid, signal.SIGSTOP)
        # Counted by claims: a writer stopped between an email's claim and its visible name
        # has written it whole (under .deliveries/), and its next try is refused.
        written_before_kill = len(list((outbox / ".deliveries").iterdir())) - WRITER_PROCESS_FROM
        os.kill(pid, signal.SIGKILL)
        sending.join(30)
        assert not sending.is_alive()
        [error] = raised
        # Not Fatal (that would release the claims) and not a ValueError (that would fail
        # them): the pass records every email of the batch as unknown, left claimed.
        assert type(error) is TransportError and "writer process stopped" in str(error)
        assert 0 < written_before_kill < len(big.envelopes)
        # The next batch starts a new writer; the emails already written are refused.
        retry = transport.send(big)
        assert writer_pid(transport) != pid
    finally:
        transport.close()
    statuses = Counter(o.status for o in retry)
    assert statuses == Counter(
        {"failed": written_before_kill, "sent": len(big.envelopes) - written_before_kill}
    )
    per_delivery = Counter(DELIVERY.search(name).group(1) for name in files(outbox))  # type: ignore[union-attr]
    assert len(per_delivery) >= len(big.envelopes) + WRITER_PROCESS_FROM - 1  # one may lack its visible name
    assert len(list((outbox / ".deliveries").iterdir())) == len(big.envelopes) + WRITER_PROCESS_FROM
    assert set(per_delivery.values()) == {1}
    assert not [p for p in outbox.iterdir() if p.name.startswith(".") and p.name != ".deliveries"]


def send_in_threads(
    transport: OutboxTransport, batches: list[Batch]
) -> tuple[list[threading.Thread], dict[str, list[Outcome] | BaseException]]:
    """Each batch handed over by a thread of its own; results[first id] is its outcomes or its error."""
    results: dict[str, list[Outcome] | BaseException] = {}

    def send(batch: Batch) -> None:
        try:
            results[batch.envelopes[0].delivery_id] = transport.send(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results[batch.envelopes[0].delivery_id] = exc

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    return threads, results


def handed_over(transport: OutboxTransport) -> int:
    assert transport._process is not None
    return transport._process._handed


def test_batches_handed_over_together_wait_in_the_pipe_and_each_thread_gets_its_own_outcomes(
    tmp_path: Path,
) -> None:
    """While the child writes one batch the next waits in its pipe (so the child never
    idles while the pass reads a reply); replies come back to the thread that sent each."""
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox, writers=1)  # with two, the second would take the batches
    batches = [batch_of(1000 * n, WRITER_PROCESS_FROM + n) for n in range(1, 4)]
    try:
        transport.send(batch_of(1, WRITER_PROCESS_FROM))  # the writer is up
        pid = writer_pid(transport)
        os.kill(pid, signal.SIGSTOP)  # nothing is read from the pipe until it goes on
        try:
            threads, results = send_in_threads(transport, batches)
            assert wait_until(lambda: handed_over(transport) == 4), "all three are in the pipe at once"
        finally:
            os.kill(pid, signal.SIGCONT)
        for thread in threads:
            thread.join(30)
        assert writer_pid(transport) == pid
    finally:
        transport.close()
    for batch in batches:
        outcomes = results[batch.envelopes[0].delivery_id]
        assert isinstance(outcomes, list), outcomes
        assert [o.delivery_id for o in outcomes] == [e.delivery_id for e in batch.envelopes]
        assert {o.status for o in outcomes} == {"sent"}
    assert len(files(outbox)) == WRITER_PROCESS_FROM + sum(len(b.envelopes) for b in batches)


def test_a_writer_killed_with_batches_waiting_leaves_each_unknown_and_the_next_writer_writes_each_once(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox, writers=1)
    batches = [batch_of(1000 * n, WRITER_PROCESS_FROM) for n in range(1, 3)]
    try:
        transport.send(batch_of(1, WRITER_PROCESS_FROM))
        pid = writer_pid(transport)
        os.kill(pid, signal.SIGSTOP)
        threads, results = send_in_threads(transport, batches)
        assert wait_until(lambda: handed_over(transport) == 3)
        os.kill(pid, signal.SIGKILL)
        for thread in threads:
            thread.join(30)
        errors = [results[b.envelopes[0].delivery_id] for b in batches]
        # Unknown, not fatal and not failed: the pass leaves both batches claimed.
        assert [type(e) for e in errors] == [TransportError, TransportError], errors
        assert all("writer process stopped" in str(e) for e in errors)
        retried = [transport.send(batch) for batch in batches]  # a new writer; the old one's pipes closed
        assert writer_pid(transport) != pid
    finally:
        transport.close()
    assert [{o.status for o in outcomes} for outcomes in retried] == [{"sent"}, {"sent"}]
    per_delivery = Counter(DELIVERY.search(name).group(1) for name in files(outbox))  # type: ignore[union-attr]
    assert len(per_delivery) == 3 * WRITER_PROCESS_FROM and set(per_delivery.values()) == {1}


def test_a_batch_that_comes_while_the_writer_is_busy_goes_to_a_second_one(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    transport = OutboxTransport(outbox)
    first, second = batch_of(1000, WRITER_PROCESS_FROM), batch_of(2000, WRITER_PROCESS_FROM)
    try:
        transport.send(batch_of(1, WRITER_PROCESS_FROM))
        busy = writer_pid(transport)
        os.kill(busy, signal.SIGSTOP)
        try:
            threads, results = send_in_threads(transport, [first])
            assert wait_until(lambda: handed_over(transport) == 2)
            # The first writer is stopped with a batch waiting: the next batch starts a second.
            assert {o.status for o in transport.send(second)} == {"sent"}
            assert len(transport._processes) == 2 and transport._processes[1].pid != busy
            assert "1000" not in results, "the stopped writer's batch is still waiting"
        finally:
            os.kill(busy, signal.SIGCONT)
        threads[0].join(30)
        # A later batch, with both idle, goes to one of them: no third starts.
        transport.send(batch_of(3000, WRITER_PROCESS_FROM))
        assert len(transport._processes) == 2
        pids = [process.pid for process in transport._processes]
    finally:
        transport.close()
    outcomes = results["1000"]
    assert isinstance(outcomes, list) and {o.status for o in outcomes} == {"sent"}
    per_delivery = Counter(DELIVERY.search(name).group(1) for name in files(outbox))  # type: ignore[union-attr]
    assert len(per_delivery) == 4 * WRITER_PROCESS_FROM and set(per_delivery.values()) == {1}
    assert wait_until(lambda: all(gone(pid) for pid in pids)), "close() ends both writers"


def test_an_outbox_folder_that_is_gone_is_fatal_and_names_the_folder_on_both_sides(tmp_path: Path) -> None:
    for process_from in (1, 10**6):
        outbox = tmp_path / f"outbox-{process_from}"
        transport = OutboxTransport(outbox, process_from=process_from)
        shutil.rmtree(outbox)
        try:
            with pytest.raises(
                FatalTransportError, match=f"outbox folder {re.escape(str(outbox))} cannot be"
            ):
                transport.send(batch_of(1, WRITER_PROCESS_FROM))
        finally:
            transport.close()


PASS_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.support.outbox_files import batch_of
from nurture.providers.outbox import OutboxTransport
transport = OutboxTransport(Path({outbox!r}))
transport.send(batch_of(1, 60))
print(transport._process.pid, flush=True)
time.sleep(120)
"""


def test_the_writer_ignores_ctrl_c_and_sigterm_and_leaves_when_its_pass_is_killed(tmp_path: Path) -> None:
    script = PASS_SCRIPT.format(repo=str(REPO), outbox=str(tmp_path / "outbox"))
    the_pass = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert the_pass.stdout is not None
        pid = int(the_pass.stdout.readline())
        # A Ctrl-C or a stop reaches the whole group; the pass decides when its writer stops.
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        assert not wait_until(lambda: gone(pid), seconds=1), "the writer outlived SIGINT and SIGTERM"
        the_pass.kill()
        the_pass.wait(10)
        assert wait_until(lambda: gone(pid)), "the writer left once its pass was gone"
    finally:
        the_pass.kill()
        the_pass.wait(10)
        assert the_pass.stdout is not None
        the_pass.stdout.close()
    assert len(files(tmp_path / "outbox")) == 60


def writers_of(outbox: Path) -> list[int]:
    """Live writer processes of this outbox folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        mine = b"nurture.providers.outbox_process" in command and str(outbox).encode() in command
        if mine and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_9_of_a_pass_through_the_outbox_never_writes_an_email_twice(tmp_path: Path, seed: int) -> None:
    """Randomized: a `send-due` through the outbox (its batches in a writer process) is
    killed at a random moment; a later pass writes everything not claimed. Each email is
    in the outbox at most once; every email recorded as sent is there; an email there but
    not recorded as sent belongs to a claim left stuck, never resent by itself."""
    chance = random.Random(seed)
    project = Project(
        tmp_path,
        f"sqlite:///{tmp_path / 'nurture.db'}",
        None,
        **{"delivery.batch_size": 60, "delivery.concurrency": 2},
    )
    outbox = tmp_path / "outbox"
    ids = active_subscribers(project.app, 1500, at("2026-12-01 14:00"))
    first = project.start("send-due", "--now", iso(STEP_TIMES[0]))
    # Killed at a random point of its progress (not of the clock, which depends on the machine).
    kill_after = chance.randrange(1, len(ids) - 300)
    assert wait_until(lambda: sum(1 for _ in outbox.glob("*.eml")) >= kill_after, seconds=60)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, "killed before the pass ended"
    assert wait_until(lambda: not writers_of(outbox)), "no writer outlives its pass"

    stuck = project.claimed_subscribers()
    later = project.run("send-due", "--now", iso(STEP_TIMES[0] + timedelta(minutes=15)))
    assert later.returncode == 0, later.stderr
    assert f"stuck {len(stuck)}" in later.stdout
    assert not writers_of(outbox)

    emails = project.emails(ids)
    per_address = Counter(
        ADDRESS.search(line).group(0)  # type: ignore[union-attr]
        for path in outbox.glob("*.eml")
        for line in path.read_text(encoding="ascii").splitlines()
        if line.startswith("To: ")
    )
    assert set(per_address.values()) == {1}, "no address has step 1 twice"
    assert project.claimed_subscribers() == stuck, "stuck claims are never resent by themselves"
    statuses = project.statuses()
    assert statuses[m.DeliveryStatus.SENT] + statuses[m.DeliveryStatus.CLAIMED] == len(ids)
    assert statuses[m.DeliveryStatus.CLAIMED] == len(stuck)
    assert {i for i in ids if emails[i] not in per_address} <= stuck, "nothing lost but stuck claims"
    assert all(emails[i] in per_address for i in set(ids) - stuck), "every email recorded as sent is written"


def test_sigterm_to_the_daemon_mid_batch_lets_the_writer_finish_and_leaves_no_claim(tmp_path: Path) -> None:
    """`nurture run` through the outbox, stopped while its writer process holds a batch:
    the batch handed over is written and recorded, nothing else is claimed, the writer
    leaves with the daemon, and what was not sent goes out once on the next pass."""
    window = {"delivery.weekdays_only": False, "delivery.batch_size": 60, "delivery.concurrency": 1}
    project = Project(tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", None, **window)
    outbox = tmp_path / "outbox"
    now = datetime.now(UTC)
    ids = active_subscribers(project.app, 600, now - timedelta(minutes=1), timezone_name=midday_zone(now))
    daemon = project.start("run", "--interval", "5")
    try:
        assert wait_until(lambda: bool(writers_of(outbox)), seconds=60), "the daemon started a writer"
        [writer] = writers_of(outbox)
        # Held still, so the stop surely arrives while a batch is in the writer's hands.
        os.kill(writer, signal.SIGSTOP)
        daemon.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        os.kill(writer, signal.SIGCONT)
        out, err = daemon.communicate(timeout=60)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    assert wait_until(lambda: not writers_of(outbox)), "the writer left with its daemon"
    assert project.claimed_subscribers() == set(), "no claim left behind"
    sent = project.statuses()[m.DeliveryStatus.SENT]
    assert 60 <= sent < len(ids)
    assert len(files(outbox)) == sent, "every email recorded as sent is written, and only those"

    rest = project.run("send-due")
    assert rest.returncode == 0, rest.stderr
    per_address = Counter(
        ADDRESS.search(line).group(0)  # type: ignore[union-attr]
        for path in outbox.glob("*.eml")
        for line in path.read_text(encoding="ascii").splitlines()
        if line.startswith("To: ")
    )
    assert len(per_address) == len(ids) and set(per_address.values()) == {1}


@pytest.mark.parametrize("python", ["/bin/false", "/nonexistent/python3", "/bin/echo"])
def test_a_writer_that_cannot_start_leaves_every_batch_to_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, python: str
) -> None:
    """An interpreter that is no Python for this package (a frozen bundle, a broken
    install): no batch is handed over, so none is lost or left unknown; the pass writes
    them all itself and says so once."""
    monkeypatch.setattr(outbox_process, "_PYTHON", python)
    transport = OutboxTransport(tmp_path / "outbox")
    try:
        first = transport.send(batch_of(1, WRITER_PROCESS_FROM))
        second = transport.send(batch_of(1001, WRITER_PROCESS_FROM))
        assert transport._process is None
    finally:
        transport.close()
    assert {o.status for o in first + second} == {"sent"}
    assert len(files(tmp_path / "outbox")) == 2 * WRITER_PROCESS_FROM
    warnings = [r.getMessage() for r in caplog.records if "writer process" in r.getMessage()]
    assert len(warnings) == 1 and "writes every batch in its own process" in warnings[0]
