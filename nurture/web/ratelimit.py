"""The signup form's rate limit, kept in the store so every process serving the site shares it.

A fixed window per client: the first attempt opens a window of `window` seconds,
and at most `limit` attempts count within it. One upsert per attempt does the
counting atomically on SQLite and PostgreSQL alike; rows whose window has passed
are deleted on the way, so the table holds only the clients seen lately.

The client is known only by a keyed hash of its IP address (HMAC under a key
derived from NURTURE_SECRET_KEY): the table never holds an address, and the hash
cannot be reversed by trying all 2**32 of them without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import dialect_name, insert_on_conflict, transaction

RATE_LIMIT = (5, 600.0)  # signups per client per 10 minutes
PREFERENCES_RATE_LIMIT = (40, 600.0)  # preference-center requests per client per 10 minutes
PREFERENCES_PURPOSE = b"nurture/preferences-rate-limit"

_PURPOSE = b"nurture/signup-rate-limit"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window ends; 0 when allowed


def client_key(secret: str, ip: str | None, purpose: bytes = _PURPOSE) -> str:
    key = hmac.digest(secret.encode("utf-8"), purpose, "sha256")
    return hmac.new(key, (ip or "unknown").encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class SignupLimit:
    """At most `limit` signup attempts per client in a `window` of seconds.

    `purpose` keeps another page's counters apart in the same table (the preference
    center's): the same client gets a different key under each purpose."""

    def __init__(self, limit: int, window: float, purpose: bytes = _PURPOSE) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window)
        self.purpose = purpose

    def attempt(self, app: App, ip: str | None, now: datetime) -> Verdict:
        """Count one attempt from `ip` (blocking database work: call it from a worker thread)."""
        table = m.SignupAttempt.__table__
        cutoff = now - self.window
        client = client_key(app.config.secrets.require_secret_key(), ip, self.purpose)
        with transaction(app.engine) as session:
            session.execute(delete(table).where(table.c.window_start <= cutoff))
            proposed = insert_on_conflict(table, dialect_name(session)).values(
                client_hash=client, window_start=now, attempts=1
            )
            expired = (
                table.c.window_start <= cutoff
            )  # another process may have kept it alive since the delete
            statement = proposed.on_conflict_do_update(
                index_elements=["client_hash"],
                set_={
                    "attempts": case((expired, 1), else_=table.c.attempts + 1),
                    "window_start": case(
                        (expired, proposed.excluded.window_start), else_=table.c.window_start
                    ),
                },
            ).returning(table.c.attempts, table.c.window_start)
            attempts, started = session.execute(statement).one()
        if attempts <= self.limit:
            return Verdict(True, 0)
        return Verdict(False, max(1, math.ceil((started + self.window - now).total_seconds())))
