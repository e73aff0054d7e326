"""`nurture run`: the sending pass every minute under APScheduler, until SIGTERM/SIGINT.

The job store is APScheduler's in-memory one, private to this process; several
daemons can share one PostgreSQL because the claims live in the database.
On a signal the current pass stops claiming, finishes what is in flight,
releases what it claimed but did not send, and the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from nurture.app import App
from nurture.errors import FatalTransportError
from nurture.sending.sendpass import PassSummary, SendingPass

log = logging.getLogger("nurture.sending.daemon")


def run_daemon(
    app: App,
    *,
    interval_seconds: int = 60,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    report: Callable[[PassSummary], None] = lambda summary: None,
    after_pass: Callable[[datetime], None] = lambda now: None,
) -> int:
    """`after_pass(now)` runs after each pass: the CLI hands in the owner's notices
    (weekly summary, alerts), which live above sending."""
    stop = threading.Event()
    busy = threading.Lock()
    exit_code = 0
    scheduler = BlockingScheduler(executors={"default": ThreadPoolExecutor(1)}, timezone=timezone.utc)

    def tick() -> None:
        nonlocal exit_code
        if stop.is_set():
            return
        with busy:
            moment = clock()
            summary = SendingPass(app, moment, stop=stop).run()
            report(summary)
            if not summary.fatal:
                after_pass(moment)
            if summary.fatal:
                # A bad key will not get better by itself: stop rather than retry every minute.
                exit_code = FatalTransportError.exit_code
                stop.set()
                scheduler.shutdown(wait=False)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing the current pass", signal.Signals(signum).name)
        stop.set()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.add_job(
        tick,
        "interval",
        seconds=interval_seconds,
        id="send-due",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=interval_seconds,
        next_run_time=datetime.now(timezone.utc),
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        stop.set()
    # Wait for a pass that is still running to release its unsent claims.
    with busy:
        pass
    return exit_code
