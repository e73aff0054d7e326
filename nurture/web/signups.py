"""Web signups, done by one worker thread, later, instead of right after the answer.

The signup page answers the same for a new, a pending and an already active
address; the work differs (a confirmation email, or nothing). Done as a
BackgroundTask, that work ran just after the answer, beside the next request on
the same keep-alive connection, which then answered sooner after an active
address: a tell. Here the handler only puts the signup on a queue. One thread,
started with the app and stopped with it, takes each signup no sooner than
`delay` to 2 x `delay` seconds (at random) after it was accepted, so the work
does not overlap the requests that follow it, and a prober cannot line one up
with it either (the rate limit allows five tries per ten minutes).

The queue is bounded: a flood that outruns the worker loses signups (logged,
without the address) rather than the server's memory. Stopping does what was
accepted at once, without the delay, before the thread ends.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from nurture.app import App
from nurture.audience.signup import subscribe

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
DELAY = 1.0  # seconds; the actual wait is between DELAY and 2 x DELAY


@dataclass(frozen=True)
class Signup:
    email: str = field(repr=False)
    at: datetime
    first_name: str | None = field(repr=False)
    timezone: str | None
    ip: str | None = field(repr=False)
    user_agent: str | None


@dataclass(frozen=True)
class _Waiting:
    signup: Signup
    due: float  # time.monotonic() after which the work may start


class _Stop:
    """Put on the queue to end the worker once everything before it is done."""


_STOP: Final = _Stop()


class SignupQueue:
    def __init__(self, app: App, *, delay: float = DELAY, size: int = QUEUE_SIZE) -> None:
        self.app = app
        self.delay = delay
        self._queue: queue.Queue[_Waiting | _Stop] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hurry = threading.Event()  # set while stopping: no more waiting
        self._random = random.SystemRandom()

    def start(self) -> None:
        """Start the worker (again after `stop`); a no-op while it runs."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._hurry.clear()
                self._thread = threading.Thread(target=self._work, name="nurture-signups", daemon=True)
                self._thread.start()

    def put(self, signup: Signup) -> None:
        """Hand over a signup without waiting. Starts the worker if the app was served without
        its lifespan (an ASGI test client), so no signup waits for a start that never comes."""
        self.start()
        due = time.monotonic() + self._random.uniform(self.delay, 2 * self.delay)
        try:
            self._queue.put_nowait(_Waiting(signup, due))
        except queue.Full:
            log.error(
                "web signup dropped: %d signups are waiting already (the address is not logged)",
                self._queue.maxsize,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the signups already accepted, then end the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None or not thread.is_alive():
            return
        self._hurry.set()
        with contextlib.suppress(queue.Full):  # still working through a full queue: the join below reports it
            self._queue.put(_STOP, timeout=timeout)
        thread.join(timeout)
        if thread.is_alive():
            log.error(
                "web signups: the worker did not finish within %.0f s; %d signups are left undone",
                timeout,
                self._queue.qsize(),
            )

    def join(self) -> None:
        """Wait until every signup put so far is done (for tests and benchmarks)."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if isinstance(item, _Stop):
                    return
                self._hurry.wait(max(0.0, item.due - time.monotonic()))
                self._do(item.signup)
            finally:
                self._queue.task_done()

    def _do(self, signup: Signup) -> None:
        try:
            result = subscribe(
                self.app,
                signup.email,
                signup.at,
                first_name=signup.first_name,
                timezone=signup.timezone,
                source="web form",
                ip=signup.ip,
                user_agent=signup.user_agent,
            )
        except Exception as exc:  # noqa: BLE001 - the person already has their answer; tell the owner
            log.error("web signup failed: %s (the address is not logged)", type(exc).__name__)
            return
        log.info("web signup: subscriber %d %s", result.subscriber_id, result.status.replace("_", " "))
