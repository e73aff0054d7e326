"""The readers' part in a fault trial (tests/support/chaos.py): their choices, made before
the workers start, and their one-click unsubscribes during the settle period, through
nurture's real web server.

Each is drawn from a generator of its own (seeded by the trial's seed), so that a seed
keeps the faults it had before the readers' part was added.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from nurture.app import App
from nurture.audience import preferences
from nurture.newsletters import schedule
from nurture.sending.planning import zone
from nurture.store import models as m
from tests.support.chaos_owner import OWNER
from tests.support.newsletters import WINTER, newsletter_file
from tests.support.sendgrid_standin import StandInMessage, substitute
from tests.support.webserver import bind_socket, running


@contextmanager
def web(app: App, clock: list[datetime]) -> Iterator[httpx.Client]:
    """nurture's web server on a free port, its clock the trial's; a client for it."""
    from nurture.web.site import create_app

    sock = bind_socket()
    with (
        running(create_app(app, clock=lambda: clock[0]), sock) as url,
        httpx.Client(base_url=url, trust_env=False, timeout=30) as client,
    ):
        yield client


def leaving(
    rng: random.Random, messages: list[StandInMessage], gone: dict[str, datetime]
) -> list[StandInMessage]:
    """Now and then one or two readers unsubscribe, each from an email they got."""
    if rng.random() >= 0.3:
        return []
    mine = {message.to_email: message for message in messages if message.to_email != OWNER}
    still = sorted(address for address in mine if address not in gone)
    return [mine[address] for address in rng.sample(still, min(len(still), rng.randint(1, 2)))]


def unsubscribe_path(message: StandInMessage) -> str:
    """The path of the https link in the email's List-Unsubscribe header, as the reader's mail
    program would post to it."""
    header = substitute(message.headers["List-Unsubscribe"], message.substitutions)
    link = next(part.strip()[1:-1] for part in header.split(",") if part.strip().startswith("<http"))
    return urlsplit(link).path


def choose(app: App, seed: int, ids: list[int], start: datetime) -> tuple[int | None, set[int]]:
    """The readers' choices: some ask for at most one email a week, and a newsletter may be
    due with the series' first email."""
    rng = random.Random(f"choices-{seed}")
    share = rng.choice([0.0, 0.25, 0.5])
    weekly = {subscriber_id for subscriber_id in ids if rng.random() < share}
    chosen_at = start - timedelta(minutes=30)
    for subscriber_id in sorted(weekly):
        reader = preferences.look(app, subscriber_id, chosen_at)
        assert reader is not None
        preferences.save(app, subscriber_id, replace(reader.choices, frequency=m.Frequency.WEEKLY), chosen_at)
    newsletter_id = None
    if rng.random() < 0.5:
        # In the practice's zone, the moment of the series' first email.
        at_local = start.astimezone(zone(app.config.delivery.default_timezone)).strftime("%Y-%m-%d %H:%M")
        newsletter_id = schedule(
            app, newsletter_file(app, WINTER), at_local, "practice", start - timedelta(days=1)
        )
    return newsletter_id, weekly
