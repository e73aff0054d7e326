"""One sending pass: due -> claim -> render -> transport -> record.

Exactly once rests on three things:
- A delivery row, unique per (subscriber, stream, step key), is written and committed
  (the claim) before anything is handed to a transport. A second process that
  wants the same email hits the unique key and moves on.
- A claim whose outcome is unknown (the process died, or the provider did not
  answer) stays "claimed" and is never sent again blindly: provider events settle
  it, and only silence from a webhook known to work releases it
  (`nurture.sending.deliveries.reconcile`, run at the start of every pass).
- Claims known not to have gone out (a fatal provider error, a stop signal) are
  released at once, so the next run picks them up.

Consent and the reader's choices (series or newsletter off, a pause, at most one a
week) are checked twice: when claiming, and again right before the transport.
A hold placed by an alert (nurture.sending.holds) keeps newsletters, or everything,
from being claimed at all. With `sunset.enabled`, the first pass of each practice
day first reviews quiet readers (nurture.audience.repermission); their
"still want these?" emails then go out like any other email.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from nurture.app import App
from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Outcome, StoppedMidBatch
from nurture.sending.batches import BatchBuilder, groups_of
from nurture.sending.claims import Claim, Claimer
from nurture.sending.deliveries import (
    ReconcileStatus,
    mark_submitted,
    reconcile,
    release_claims,
    stuck_status,
)
from nurture.sending.holds import Hold, holds_everything, holds_newsletters, read_holds
from nurture.sending.newsletter_zones import finish_newsletters
from nurture.sending.outcomes import PendingOutcomes
from nurture.sending.passlog import record_pass
from nurture.sending.probe import send_probe
from nurture.store.db import reading, transaction

# The day's re-permission review, given by the caller (sending sits below the audience):
# run before claiming, it returns how many quiet readers it asked.
Review = Callable[[Engine | Connection, datetime], int]
COLLECT_EVERY_ROUNDS = 25  # with the collector off during a pass: a collection of young objects this often
# How long a thread may hold the GIL while another wants it, during a pass (Python's
# default is 5 ms). The claim thread gives up the GIL for each SQL statement and the
# request threads for each socket read; with the main thread building emails, every
# such return waited up to a whole interval, and the claims are the pass's critical path.
PASS_SWITCH_INTERVAL = 0.001


@dataclass
class PassSummary:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0  # no answer from the provider: left claimed, reported as stuck
    released: int = 0  # claimed, known not sent, given back for the next run
    rescheduled: int = 0  # due but outside the send window or over the daily cap
    stuck: int = 0
    settled: int = 0  # stuck claims settled by provider events
    reconciled: int = 0  # stuck claims with no provider record, released and claimed again
    probed: bool = False  # a probe went to the practice's address (nurture.sending.probe)
    fatal: str | None = None
    held: list[str] = field(default_factory=list)  # what a hold kept back, and why
    asked: int = 0  # quiet readers the day's re-permission review found (their emails follow)
    by_stream: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stuck_status: ReconcileStatus = field(default_factory=ReconcileStatus)

    def line(self) -> str:
        text = (
            f"sent {self.sent}, failed {self.failed}, skipped {self.skipped}, "
            f"stuck {self.stuck}, waiting for window or cap {self.rescheduled}"
        )
        if self.released:
            text += f", released {self.released} unsent claims"
        if self.settled:
            text += f", settled {self.settled} stuck by provider events"
        if self.reconciled:
            text += f", {self.reconciled} stuck with no provider record released to send again"
        for hold in self.held:
            text += f"; held: {hold}"
        if self.asked:
            text += f"; {self.asked} quiet readers to ask if they still want these emails"
        if self.stuck:
            text += " (see: nurture deliveries --stuck)"
            if self.stuck_status.blocked:
                text += (
                    f"; {self.stuck_status.blocked} not released automatically: {self.stuck_status.reason}"
                )
        return text


class NotAllOurs(Exception):
    """Some claim of a batch was released by someone else before its request: none of it goes."""


def worker_name() -> str:
    return f"{socket.gethostname()[:50]}:{os.getpid()}"


class SendingPass:
    def __init__(
        self,
        app: App,
        now: datetime,
        *,
        limit: int | None = None,
        stop: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
        worker: str | None = None,
        abandon: threading.Event | None = None,
        review: Review | None = None,
    ) -> None:
        self.app = app  # for its transport only, made when the first batch goes (an idle pass needs none)
        self.config = app.config
        self.engine = app.engine
        self.catalog = app.catalog
        self.now = now
        self.limit = limit
        self.stop = stop or threading.Event()  # stop claiming, finish what is in flight
        self.abandon = abandon or threading.Event()  # stop waiting for requests in flight too
        self.started = time.monotonic()
        self.progress = progress
        self.summary = PassSummary()
        self.batch_size = self.config.delivery.batch_size
        # One batch per claim, and one claim ahead of the batch being built: a worker never
        # holds more claims than it has in flight plus two batches, so a kill strands no more.
        self.claim_round = self.batch_size
        # What goes out is what was published: the latest versions, read afresh for each pass.
        self.campaigns = self.catalog.refresh(self.engine, now)
        self.holds: list[Hold] = read_holds(self.engine)
        self.claimer = Claimer(
            self.config.delivery,
            self.campaigns,
            self.catalog,
            self.engine,
            now,
            worker or worker_name(),
            newsletters=not holds_newsletters(self.holds),
            asks=self.config.sunset.enabled,
        )
        self.claimed_total = 0
        self.builder = BatchBuilder(self.config, self.engine, app.renderer, self.catalog, self.campaigns, now)
        # The day's re-permission review (nurture.audience.repermission), given by the caller:
        # it returns how many quiet readers it asked. Sending sits below the audience.
        self.review = review
        # Outcomes are written in the next claim's transaction, or when the pass ends.
        self.outcomes = PendingOutcomes(now)

    # ------------------------------------------------------------ the pass

    def run(self) -> PassSummary:
        # Everything alive now (modules, SQLAlchemy, templates: most of the heap) lives on
        # after the pass: frozen, no collection walks it. And no collection runs during
        # the pass: what it makes (tuples, dicts, strings) holds no reference cycles and
        # is freed as it goes, while a collection every few hundred new objects cost about
        # a tenth of a large pass. The few cycles it leaves (sessions) are collected every
        # COLLECT_EVERY_ROUNDS claim rounds, and after the pass.
        collecting = gc.isenabled()
        gc.freeze()
        gc.disable()
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, PASS_SWITCH_INTERVAL))
        started = time.monotonic()
        try:
            summary = self._run()
        finally:
            sys.setswitchinterval(switch_interval)
            if collecting:
                gc.enable()
            gc.unfreeze()
        finished = self.now + timedelta(seconds=time.monotonic() - started)
        record_pass(
            self.engine,
            self.now,
            finished,
            sent=summary.sent,
            failed=summary.failed,
            stuck=summary.stuck,
            fatal=summary.fatal,
        )  # for the console
        return summary

    def _run(self) -> PassSummary:
        reconciled = reconcile(self.engine, self.config, self.now)
        self.summary.settled, self.summary.reconciled = reconciled.settled, reconciled.released
        self.summary.held = [f"{hold.what} ({hold.reason})" for hold in self.holds]
        if holds_everything(self.holds):
            # Sending is paused by an alert until the owner lifts the hold: nothing is claimed.
            with reading(self.engine) as session:
                self.summary.stuck_status = stuck_status(session, self.config, self.now)
            self.summary.stuck = self.summary.stuck_status.stuck
            return self.summary
        if self.review is not None:
            # Before claiming, so the "still want these?" emails it asks for go in this pass.
            self.summary.asked = self.review(self.engine, self.now)
        self._send()
        self._finish_newsletters()
        if isinstance(self.engine, Engine) and not self._stopping():
            # The last stuck claims get a later email whose events can vouch for them.
            self.summary.probed = send_probe(self.app, self.now, self.claimer.worker, self._clock())
        with reading(self.engine) as session:
            self.summary.stuck_status = stuck_status(session, self.config, self.now)
        self.summary.stuck = self.summary.stuck_status.stuck
        return self.summary

    def _send(self) -> None:
        """Claim a batch, check and build it, hand it over; again, until nothing is due.

        A worker holds at most two batches of claims not yet handed to the transport (plus
        what is in flight): the one being built and the next, claimed meanwhile in the
        claim thread (mostly SQL, outside the GIL); a kill strands no more than that. Every
        claim not handed over is released when the loop ends for any reason (a stop, a
        fatal answer, a transport that cannot even start, an error); an `abandon` (a second
        signal) stops waiting for requests in flight, whose claims stay claimed for
        evidence to settle.
        """
        concurrency = self.config.delivery.concurrency
        in_flight: dict[Future[list[Outcome]], list[Claim]] = {}
        pending: dict[int, Claim] = {}  # claimed, not handed over
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="nurture-send")
        # The next batch is claimed in a thread of its own while this one is built and the
        # requests before it are in flight: claiming is mostly SQL, run outside the GIL.
        claiming = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nurture-claim")
        ahead = self._claim_ahead(claiming)
        rounds = 0
        try:
            while ahead is not None:
                claims, ahead = ahead.result(), None
                if not claims:
                    break
                pending.update((claim.delivery_id, claim) for claim in claims)
                ahead = self._claim_ahead(claiming)
                rounds += 1
                if rounds % COLLECT_EVERY_ROUNDS == 0:
                    gc.collect(1)  # the young objects only (the rest is frozen): cycles a long pass left
                for group in groups_of(claims, self.batch_size):
                    if self._stopping():
                        break
                    batch, ready = self._build(group)
                    kept = {claim.delivery_id for claim in ready}
                    for claim in group:
                        if claim.delivery_id not in kept:
                            pending.pop(claim.delivery_id, None)  # skipped, held or failed by _prepare
                    if batch is None:
                        continue
                    try:
                        transport = self.app.transport
                    except OSError as exc:
                        # It cannot even start (the outbox folder): nothing went out, `pending`
                        # is released below, and the run stops as on a refused key.
                        self.summary.fatal = (
                            f"the {self.config.delivery.transport} transport cannot start: {exc}"
                        )
                        break
                    while len(in_flight) >= concurrency and not self.abandon.is_set():
                        self._collect(in_flight, FIRST_COMPLETED)
                    if self._stopping():
                        break
                    if self._submitted(ready, transport.name):
                        in_flight[pool.submit(transport.send, batch)] = ready
                    # Off `pending` either way: handed over, or released in _submitted (its ids
                    # may be claimed again, even by this pass, and must not be released twice).
                    for claim in ready:
                        pending.pop(claim.delivery_id, None)
                if self._stopping():
                    break  # what is pending (and claimed ahead) is released below
        finally:
            try:
                # Claimed, then a stop, a fatal answer or an error: never handed over, so known not sent.
                unsent = list(pending.values())
                if ahead is not None:
                    unsent += ahead.result()
                self._release(unsent)
            finally:
                while in_flight and not self.abandon.is_set():
                    self._collect(in_flight, None)
                claiming.shutdown(wait=True)
                pool.shutdown(wait=not self.abandon.is_set(), cancel_futures=True)
                self._flush()

    def _clock(self) -> datetime:
        """The pass's `now`, moved on by the time it has taken (its requests' order in time)."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def _stopping(self) -> bool:
        return self.summary.fatal is not None or self.stop.is_set() or self.abandon.is_set()

    def _submitted(self, claims: Sequence[Claim], provider: str) -> bool:
        """Write down, before the request, to which transport and when these go: reconciliation
        measures the provider's event retry window from here (nurture.sending.deliveries), and
        a claim never marked is known never to have left.

        False when some claim is no longer this pass's (released meanwhile, which only a claim
        held past `reconcile_after` can be): then none of the batch goes, and the rest is released."""
        at = self._clock()
        ids = [claim.delivery_id for claim in claims]
        try:
            with transaction(self.engine) as session:
                if mark_submitted(session, ids, provider, at) != len(ids):
                    raise NotAllOurs  # rolls the marks back
            return True
        except NotAllOurs:
            self._release(claims)
            return False

    def _claim_ahead(self, claiming: ThreadPoolExecutor) -> Future[list[Claim]] | None:
        """Start claiming the next batch, unless the pass is stopping or has its fill."""
        if self._stopping():
            return None
        room = self._room()  # the claim before this one has finished: claimed_total is current
        if room == 0:
            return None
        if isinstance(self.engine, Engine):
            return claiming.submit(self._claim, min(room, self.claim_round))
        # A rehearsal (simulate, --dry-run) runs on one connection whose savepoints nest:
        # its claims are taken here, in turn with everything else.
        claimed: Future[list[Claim]] = Future()
        try:
            claimed.set_result(self._claim(min(room, self.claim_round)))
        except Exception as exc:  # noqa: BLE001 - handed over as a thread's would be
            claimed.set_exception(exc)
        return claimed

    def _room(self) -> int:
        if self.limit is None:
            return self.claim_round
        return max(0, self.limit - self.claimed_total)

    def _collect(self, in_flight: dict[Future[list[Outcome]], list[Claim]], mode: str | None) -> None:
        # In short waits, so that an abandon (a second signal) is heard at once.
        done, _ = wait(list(in_flight), timeout=0.2, return_when=mode or "ALL_COMPLETED")
        for future in done:
            claims = in_flight.pop(future)
            try:
                outcomes = future.result()
            except FatalTransportError as exc:
                # The provider refused the request itself: nothing in it went out, except
                # what a per-message transport reports it handed over before the refusal.
                self.summary.fatal = str(exc)
                handed = {o.delivery_id for o in exc.outcomes} if isinstance(exc, StoppedMidBatch) else set()
                if handed:
                    assert isinstance(exc, StoppedMidBatch)
                    self.outcomes.add([c for c in claims if str(c.delivery_id) in handed], exc.outcomes)
                self._release([c for c in claims if str(c.delivery_id) not in handed])
                continue
            except ValueError as exc:
                # The transport refused the batch before sending anything (a bug, not a network fault).
                outcomes = [
                    Outcome(str(claim.delivery_id), "failed", error=f"not sent: {exc}") for claim in claims
                ]
            except Exception as exc:  # noqa: BLE001 - any other failure leaves the outcome unknown
                outcomes = [
                    Outcome(str(claim.delivery_id), "unknown", error=f"{type(exc).__name__}: {exc}")
                    for claim in claims
                ]
            self.outcomes.add(claims, outcomes)

    # ------------------------------------------------------------ claim

    def _claim(self, room: int) -> list[Claim]:
        with transaction(self.engine) as session:
            written = self.outcomes.write(session)
            claims = self.claimer.claim(session, room)
        self._written(*written)
        self.claimed_total += len(claims)
        self.summary.rescheduled = self.claimer.rescheduled
        return claims

    def _finish_newsletters(self) -> None:
        """A newsletter is sent once every zone's moment has passed and nobody is left."""
        if not self.claimer.newsletters_done or self.stop.is_set() or self.summary.fatal:
            return
        with transaction(self.engine) as session:
            finish_newsletters(session, self.claimer.newsletters_done, self.now)

    # ------------------------------------------------------------ render

    def _build(self, group: list[Claim]) -> tuple[Batch | None, list[Claim]]:
        """The group's batch and the claims in it; what the last check turned away is recorded
        (skipped, failed) or given back (held) here."""
        built = self.builder.build(group)
        for error, claims in built.skipped.items():
            self.outcomes.add(
                claims, [Outcome(str(c.delivery_id), "failed", error=error) for c in claims], skipped=True
            )
        self._release(built.held)
        if built.unusable:
            self.outcomes.add(
                [claim for claim, _ in built.unusable],
                [Outcome(str(claim.delivery_id), "failed", error=error) for claim, error in built.unusable],
            )
        return built.batch, built.ready

    # ------------------------------------------------------------ record

    def _flush(self) -> None:
        """Write the outcomes still pending in a transaction of their own (the pass is ending)."""
        if self.outcomes:
            with transaction(self.engine) as session:
                written = self.outcomes.write(session)
            self._written(*written)

    def _written(self, entries: int, settled: int) -> None:
        """The outcomes are committed: count them into the summary."""
        summary = self.summary
        summary.settled += settled
        for entry in self.outcomes.take(entries):
            summary.sent += entry.sent
            summary.failed += entry.failed
            summary.skipped += entry.skipped
            summary.unknown += sum(len(ids) for ids in entry.unknown.values())
            for stream, count in entry.by_stream.items():
                summary.by_stream[stream] += count
            if self.progress:
                self.progress(entry.claims)

    def _release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        with transaction(self.engine) as session:
            # Only this pass's own rows: an id released here may already be another worker's.
            release_claims(
                session, [claim.delivery_id for claim in claims], self.now, worker=self.claimer.worker
            )
        self.summary.released += len(claims)


def send_due(
    app: App,
    now: datetime,
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    abandon: threading.Event | None = None,
    review: Review | None = None,
) -> PassSummary:
    return SendingPass(
        app, now, limit=limit, stop=stop, progress=progress, abandon=abandon, review=review
    ).run()
