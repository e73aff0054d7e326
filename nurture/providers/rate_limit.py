"""A provider's sending rate shared by every worker on one store.

SES allows an account `MaxSendRate` emails a second, whatever the number of machines
sending. Each worker pacing itself at that rate would send N times too fast with N
workers, and be throttled. Instead the workers share one timeline in the database
(`rate_schedules`): a worker reserves the next few slots with one atomic UPDATE (the
schedule's next free moment moves on by k/rate seconds) and sends at those moments.
A worker that stops leaves its unused slots empty, which only ever sends slower.

`wait_time()` has the same meaning as the in-process bucket's: take a slot, and say
how long to sleep before using it. Slots are reserved about a fifth of a second's worth
at a time, so the store sees a few short writes a second per worker.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine, case, select, update

from nurture.store import models as m
from nurture.store.db import dialect_name, insert_on_conflict, reading, transaction

RESERVE_SECONDS = 0.2


class Pacer(Protocol):
    def wait_time(self) -> float: ...


class SharedSchedule:
    """At most `rate` slots a second on the timeline named `name`, across all workers."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        rate: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.name = name
        self.rate = max(rate, 0.1)
        self._clock = clock
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()
        self._chunk = max(1, math.floor(self.rate * RESERVE_SECONDS))

    def wait_time(self) -> float:
        """Take the next slot; how long to sleep before sending in it (0.0 when it has come)."""
        return max(0.0, self.next_slot() - self._clock())

    def next_slot(self) -> float:
        """The moment of the next slot this worker may send in (seconds since the epoch).

        A slot already past by more than one interval is let go unused: using a backlog of
        them at once would be a burst faster than the rate."""
        with self._lock:
            while True:
                if not self._slots:
                    self._reserve()
                slot = self._slots.popleft()
                if slot >= self._clock() - 1 / self.rate:
                    return slot

    def _reserve(self) -> None:
        span = self._chunk / self.rate
        schedule = m.RateSchedule
        with transaction(self.engine) as session:
            now = self._clock()
            session.execute(
                insert_on_conflict(schedule.__table__, dialect_name(session))
                .values(name=self.name, next_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            # One statement: the row is locked (SQLite: the store) until commit, so two workers
            # never get the same slots.
            end = session.execute(
                update(schedule)
                .where(schedule.name == self.name)
                .values(next_at=case((schedule.next_at < now, now), else_=schedule.next_at) + span)
                .returning(schedule.next_at)
            ).scalar_one()
        start = end - span
        self._slots.extend(start + index / self.rate for index in range(self._chunk))


class SharedPause:
    """A provider's "not before" moment, shared by every worker on the store.

    SendGrid has no fixed rate to pace at: it answers 429 with the moment its limit resets
    (X-RateLimit-Reset). The worker that hears it records that moment here, and every
    worker waits for it before its next request, instead of each finding the limit on its
    own with a request of a thousand emails. One write per 429; one read per request, or
    fewer: a read that found no pause is trusted for `RECHECK_AFTER` seconds, so another
    worker's pause is heard within that time (a request sent meanwhile that meets the limit
    gets its own 429 and waits for the same reset)."""

    RECHECK_AFTER = 0.5

    def __init__(self, engine: Engine, name: str, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.name = name
        self._clock = clock
        self._clear_until = 0.0  # no pause was recorded when last read, trusted until then

    def wait_time(self) -> float:
        """How long until requests may go again (0.0: now)."""
        now = self._clock()
        if now < self._clear_until:
            return 0.0
        with reading(self.engine) as session:
            until = session.scalar(select(m.RateSchedule.next_at).where(m.RateSchedule.name == self.name))
        now = self._clock()
        wait = max(0.0, (until or 0.0) - now)
        if not wait:
            self._clear_until = now + self.RECHECK_AFTER
        return wait

    def hold_until(self, moment: float) -> None:
        """No request before `moment` (seconds since the epoch), for any worker; a later hold stays."""
        self._clear_until = 0.0
        schedule = m.RateSchedule
        with transaction(self.engine) as session:
            session.execute(
                insert_on_conflict(schedule.__table__, dialect_name(session))
                .values(name=self.name, next_at=0.0)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            session.execute(
                update(schedule)
                .where(schedule.name == self.name, schedule.next_at < moment)
                .values(next_at=moment)
            )
