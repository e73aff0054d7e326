"""What `nurture run` does around each sending pass besides sending.

- Before the pass: read the SES events queue when `ses.events_queue_url` is set (whatever
  the transport now is: after a switch, the old provider's events still come in), so
  a bounce, complaint or unsubscribe is applied before the next email.
- After it, once a day: the retention pass (nurture.retention).

Neither may stop the daemon: a failure is logged (by its type: the message may hold a
URL or an address) and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from nurture.app import App
from nurture.event_feeds import poll_ses_queue
from nurture.retention import apply_retention, due

log = logging.getLogger("nurture.upkeep")

MAX_ROUNDS = 200  # at most 2,000 queue messages a tick: a backlog is read over a few ticks


@dataclass
class Upkeep:
    last_retention: datetime | None = None

    def before_pass(self, app: App, clock: Callable[[], datetime], stop: threading.Event) -> None:
        if not (app.config.ses.events_queue_url and app.config.ses.region):
            return
        try:
            poll_ses_queue(app, clock, wait_seconds=0, stop=stop, max_rounds=MAX_ROUNDS)
        except Exception as exc:  # noqa: BLE001 - the daemon goes on; the queue keeps the messages
            log.warning(
                "reading the SES events queue failed (%s); trying again next tick", type(exc).__name__
            )

    def after_pass(self, app: App, now: datetime) -> None:
        if not due(self.last_retention, now):
            return
        try:
            apply_retention(app, now)
            self.last_retention = now
        except Exception as exc:  # noqa: BLE001 - the daemon goes on; retention runs again next tick
            log.warning("the retention pass failed (%s); trying again next tick", type(exc).__name__)
