"""The tick: what cron's `nurture send-due` runs once, and `nurture run` every minute.

A tick is a sending pass, then the owner's notices (an alert when one is called
for; under `nurture run`, the Monday summary too), then the daily summaries of the
Results pages for days that have settled (nurture.reporting.result_days). The notices are left out when
the pass stopped on a fatal provider error: they would go through the same provider.

`nurture run` ticks under APScheduler until SIGTERM/SIGINT; around each tick it reads
the SES events queue and, once a day, applies retention (nurture.upkeep). The job store is
APScheduler's in-memory one, private to this process; several daemons can share one
PostgreSQL because the claims live in the database. On a signal the current pass
stops claiming, finishes what is in flight, releases what it claimed but did not
send, and the process exits; a second signal stops it waiting for the requests in
flight (their claims stay claimed and settle from the provider's events).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from nurture.app import App
from nurture.audience.repermission import daily_review
from nurture.errors import FatalTransportError
from nurture.reporting.notices import send_due_notices
from nurture.reporting.result_days import summarize_days
from nurture.sending.sendpass import PassSummary, SendingPass
from nurture.upkeep import Upkeep

log = logging.getLogger("nurture.tick")


@dataclass
class Tick:
    summary: PassSummary
    notices: list[str] = field(default_factory=list)  # the owner's notices sent after the pass


def tick(
    app: App,
    now: datetime,
    *,
    weekly: bool,
    limit: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    abandon: threading.Event | None = None,
) -> Tick:
    """One sending pass at `now`, then the owner's notices (with `weekly`, the Monday summary too)."""
    app.refresh_settings()  # what the owner saved in the console since the last tick counts now
    summary = SendingPass(
        app,
        now,
        limit=limit,
        stop=stop,
        progress=progress,
        abandon=abandon,
        review=daily_review(app.config),
    ).run()
    if summary.fatal or (stop is not None and stop.is_set()):
        return Tick(summary)
    notices = send_due_notices(app, now, weekly=weekly)
    if stop is None or not stop.is_set():
        summarize_days(app, now)  # settled days of Results, a slice at a time
    return Tick(summary, notices)


def run_daemon(
    app: App,
    *,
    interval_seconds: int = 60,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    report: Callable[[Tick], None] = lambda done: None,
) -> int:
    """Tick every `interval_seconds` until a signal or a fatal provider error; `report` hears of each tick."""
    # Imported here, not above: only the daemon schedules, and importing APScheduler would
    # add about 45 ms to the start of every cron pass and every other command.
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    stop = threading.Event()
    abandon = threading.Event()  # a second signal: stop waiting for the requests in flight
    busy = threading.Lock()
    exit_code = 0
    scheduler = BlockingScheduler(executors={"default": ThreadPoolExecutor(1)}, timezone=UTC)
    upkeep = Upkeep()

    def job() -> None:
        nonlocal exit_code
        if stop.is_set():
            return
        with busy:
            upkeep.before_pass(app, clock, stop)
            done = tick(app, clock(), weekly=True, stop=stop, abandon=abandon)
            report(done)
            if not done.summary.fatal:
                upkeep.after_pass(app, clock())
            if done.summary.fatal:
                # A bad key will not get better by itself: stop rather than retry every minute.
                exit_code = FatalTransportError.exit_code
                stop.set()
                scheduler.shutdown(wait=False)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            abandon.set()
            return
        log.info("received %s: finishing the current pass", signal.Signals(signum).name)
        stop.set()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.add_job(
        job,
        "interval",
        seconds=interval_seconds,
        id="send-due",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=interval_seconds,
        next_run_time=datetime.now(UTC),
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        stop.set()
    # Wait for a pass that is still running to release its unsent claims.
    with busy:
        pass
    return exit_code
