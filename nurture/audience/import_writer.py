"""The import's second pass: validated rows, a chunk at a time, into the store.

Everything here runs inside the one transaction import_csv opens. On SQLite the hot
statements (the lookup by address and the three inserts: subscribers, consent
records, enrollments) go to the driver as precompiled SQL with values already in
their stored form: building and converting each row through SQLAlchemy cost more
than the inserts themselves. PostgreSQL keeps the unnest() inserts of insert_rows.
The rare statements (filling blanks, activating pending people) stay SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from nurture.content.campaigns import Campaign
from nurture.series.enrollment import enroll_created_after, enroll_in_campaign, enroll_new
from nurture.store import models as m
from nurture.store.db import BulkInsert, insert_rows
from nurture.tokens import address_hasher

if TYPE_CHECKING:
    from nurture.audience.import_report import ImportReport

# A spooled row: (email, key, first_name, timezone, consented_at, consent_source), with
# consented_at as stored_utc() gives it (the spool holds no datetime objects).
SpooledRow = tuple[str, str, str | None, str | None, str, str]

# Addresses looked up per statement: under SQLite's historical limit of 999 bound values.
LOOKUP = 900

_SUBSCRIBERS: Table = m.Subscriber.__table__
_CONSENTS: Table = m.ConsentEvent.__table__
# (id, email_key, status, first_name, timezone): the raw SQLite query returns the same columns.
_EXISTING = select(
    _SUBSCRIBERS.c.id,
    _SUBSCRIBERS.c.email_key,
    _SUBSCRIBERS.c.status,
    _SUBSCRIBERS.c.first_name,
    _SUBSCRIBERS.c.timezone,
).where(_SUBSCRIBERS.c.email_key.in_(bindparam("keys", expanding=True)))
_ERASED = select(m.Suppression.address_hash).where(
    m.Suppression.address_hash.in_(bindparam("digests", expanding=True))
)
_NAMES = update(_SUBSCRIBERS).where(_SUBSCRIBERS.c.id == bindparam("b_id"))
_SUBSCRIBER_COLUMNS = (
    "email",
    "email_key",
    "first_name",
    "timezone",
    "status",
    "source",
    "created_at",
    "confirmed_at",
    "status_changed_at",
    "confirm_nonce",
)
# ip, user_agent and wording_version are left out: NULL for an import (no column default fills them).
_CONSENT_COLUMNS = ("subscriber_id", "kind", "occurred_at", "recorded_at", "source", "detail")


@lru_cache(maxsize=64)
def _in_list(count: int) -> str:
    return ", ".join("?" * count)


@dataclass
class Writer:
    """The second pass's state: what has been decided about addresses met in earlier chunks."""

    session: Session
    report: ImportReport
    now: datetime
    note: str
    campaigns: Sequence[Campaign]  # the published series new subscribers start ("confirmed" trigger)
    secrets: tuple[str, ...]  # every key: a person forgotten before a key rotation stays suppressed
    check_suppressions: bool
    erased_seen: set[str] = field(default_factory=set)  # digests; as many as erased addresses in the file
    left_seen: set[int] = field(default_factory=set)  # ids of people who left, met in the file
    raw: bool = field(init=False, default=False)  # SQLite: the driver's own statements
    _hashers: list[Callable[[str], str]] = field(init=False, default_factory=list)
    _subscribers: BulkInsert | None = field(init=False, default=None)
    _consents: BulkInsert | None = field(init=False, default=None)
    _constants: dict[str, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        dialect = self.session.get_bind().dialect
        self.raw = dialect.name == "sqlite"
        self._hashers = [address_hasher(secret) for secret in self.secrets]
        if self.raw:
            self._subscribers = BulkInsert(dialect, _SUBSCRIBERS, _SUBSCRIBER_COLUMNS)
            self._consents = BulkInsert(dialect, _CONSENTS, _CONSENT_COLUMNS)
            # Converted once: every row of the import carries the same ones.
            bind = self._subscribers.bind
            self._constants = {
                "status": bind("status", m.SubscriberStatus.ACTIVE),
                "now": bind("created_at", self.now),
                "kind": self._consents.bind("kind", m.ConsentKind.IMPORT),
                "recorded_at": self._consents.bind("recorded_at", self.now),
            }

    def write(self, chunk: Sequence[SpooledRow]) -> None:
        report = self.report
        # Repeats of an address merge into its first line; later lines only fill blanks.
        firsts: dict[str, list[Any]] = {}
        for email, key, first_name, zone, consented_at, source in chunk:
            first = firsts.get(key)
            if first is None:
                firsts[key] = [email, first_name, zone, consented_at, source]
            else:
                report.merged += 1
                first[1] = first[1] or first_name
                first[2] = first[2] or zone
        keys = list(firsts)
        digests: dict[str, str] = {}  # key -> its digest under the key that erased it (else the current one)
        erased: set[str] = set()
        if self.check_suppressions:
            under_each = {key: [digest(key) for digest in self._hashers] for key in keys}
            erased = self._erased([digest for found in under_each.values() for digest in found])
            digests = {
                key: next((digest for digest in found if digest in erased), found[0])
                for key, found in under_each.items()
            }
        existing = self._existing(keys)
        fresh: list[str] = []
        filled: list[dict[str, Any]] = []
        activated: list[dict[str, Any]] = []
        activated_consents: list[tuple[int, str, str]] = []
        for key in keys:
            email, first_name, zone, consented_at, source = firsts[key]
            known = existing.get(key)
            if digests and digests[key] in erased:
                if digests[key] in self.erased_seen:
                    report.merged += 1
                else:
                    self.erased_seen.add(digests[key])
                    report.skipped_erased += 1
            elif known is None:
                fresh.append(key)
            else:
                known_id, _, status, known_name, known_zone = known
                if status == m.SubscriberStatus.ACTIVE:
                    report.merged += 1
                    names = {
                        "b_id": known_id,
                        "b_first_name": known_name or first_name,
                        "b_timezone": known_zone or zone,
                    }
                    if (names["b_first_name"], names["b_timezone"]) != (known_name, known_zone):
                        filled.append(names)
                elif status == m.SubscriberStatus.PENDING:
                    activated.append(
                        {
                            "b_id": known_id,
                            "b_first_name": known_name or first_name,
                            "b_timezone": known_zone or zone,
                        }
                    )
                    activated_consents.append((known_id, consented_at, source))
                elif known_id in self.left_seen:
                    report.merged += 1
                else:
                    # They left (or bounced, or complained): an import never overrides that.
                    self.left_seen.add(known_id)
                    report.skipped_unsubscribed += 1
        if filled:
            self.session.execute(
                _NAMES.values(first_name=bindparam("b_first_name"), timezone=bindparam("b_timezone")), filled
            )
        if activated:
            self.session.execute(
                _NAMES.values(
                    first_name=bindparam("b_first_name"),
                    timezone=bindparam("b_timezone"),
                    confirmed_at=func.coalesce(
                        _SUBSCRIBERS.c.confirmed_at,
                        bindparam("b_now", self.now, type_=_SUBSCRIBERS.c.confirmed_at.type),
                    ),
                    status=m.SubscriberStatus.ACTIVE,
                    status_changed_at=self.now,
                ),
                activated,
            )
        # Matched up by address, so the order ids come back in does not matter.
        new_ids, enrolled = self._insert_subscribers(fresh, firsts)
        self._insert_consents(activated_consents, new_ids, firsts)
        report.created += len(new_ids)
        report.activated += len(activated)
        if not enrolled:
            enroll_new(
                self.session, self.campaigns, [subscriber_id for subscriber_id, _ in new_ids], self.now
            )
        report.enrolled += len(new_ids) * len(self.campaigns)
        woken = [row["b_id"] for row in activated]
        for campaign in self.campaigns if woken else ():
            report.enrolled += enroll_in_campaign(self.session, campaign, woken, self.now)

    def _erased(self, digests: list[str]) -> set[str]:
        if not self.raw:
            return set(self.session.scalars(_ERASED, {"digests": digests}))
        found: set[str] = set()
        for start in range(0, len(digests), LOOKUP):
            part = digests[start : start + LOOKUP]
            sql = f"SELECT address_hash FROM suppressions WHERE address_hash IN ({_in_list(len(part))})"
            found.update(row[0] for row in self._query(sql, part))
        return found

    def _existing(self, keys: list[str]) -> dict[str, tuple[Any, ...]]:
        if not self.raw:
            return {row[1]: tuple(row) for row in self.session.execute(_EXISTING, {"keys": keys})}
        found: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(keys), LOOKUP):
            part = keys[start : start + LOOKUP]
            sql = (
                "SELECT id, email_key, status, first_name, timezone FROM subscribers "
                f"WHERE email_key IN ({_in_list(len(part))})"
            )
            found.update((row[1], row) for row in self._query(sql, part))
        return found

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows of a read as plain tuples, straight from the driver, in this transaction:
        wrapping each in a SQLAlchemy Row cost more than reading it."""
        cursor = self.session.connection().connection.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _insert_subscribers(
        self, keys: list[str], firsts: dict[str, list[Any]]
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """Insert a new subscriber for each key; return (id, email_key) for each, in no set order,
        and whether they were also enrolled (in every series)."""
        if not keys:
            return [], False
        if self._subscribers is None:
            rows = [self._new_subscriber(key, *firsts[key][:3]) for key in keys]
            returning = (_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.email_key)
            return [
                (row[0], row[1]) for row in insert_rows(self.session, _SUBSCRIBERS, rows, returning=returning)
            ], False
        status, now = self._constants["status"], self._constants["now"]
        rows_raw = [
            (first[0], key, first[1], first[2], status, "import", now, now, now, 0)
            for key, first in zip(keys, map(firsts.__getitem__, keys), strict=True)
        ]
        # Nothing else writes in this transaction (BEGIN IMMEDIATE holds the write lock),
        # so the rows above the highest id before the insert are exactly the ones it
        # added, read back in one range scan of the primary key. SQLite hands out the
        # next id above the highest, except after the id 2**63-1 has been used: then
        # ids are random, the count does not match, and the rows are found by address.
        [(top,)] = self._query("SELECT coalesce(max(id), 0) FROM subscribers", ())
        self._subscribers.run(self.session, rows_raw)
        found = self._query("SELECT id, email_key FROM subscribers WHERE id > ?", (top,))
        if len(found) != len(keys):
            return [(row[0], key) for key, row in self._existing(keys).items()], False
        enroll_created_after(self.session, self.campaigns, top, self.now)
        return found, True

    def _insert_consents(
        self,
        activated: list[tuple[int, str, str]],
        created: Sequence[tuple[Any, ...]],
        firsts: dict[str, list[Any]],
    ) -> None:
        """One import consent record for each person activated, as (id, consented_at as
        stored_utc gives it, source), and for each created, as (id, email_key)."""
        if self._consents is None:
            consents = activated + [
                (subscriber_id, firsts[key][3], firsts[key][4]) for subscriber_id, key in created
            ]
            rows = [
                self._consent(subscriber_id, datetime.fromisoformat(when).replace(tzinfo=UTC), source)
                for subscriber_id, when, source in consents
            ]
            insert_rows(self.session, _CONSENTS, rows)
            return
        kind, recorded, note = self._constants["kind"], self._constants["recorded_at"], self.note
        raw = [
            (subscriber_id, kind, when, recorded, source, note) for subscriber_id, when, source in activated
        ]
        raw += [
            (subscriber_id, kind, firsts[key][3], recorded, firsts[key][4], note)
            for subscriber_id, key in created
        ]
        self._consents.run(self.session, raw)

    def _new_subscriber(
        self, key: str, email: str, first_name: str | None, zone: str | None
    ) -> dict[str, Any]:
        return {
            "email": email,
            "email_key": key,
            "first_name": first_name,
            "timezone": zone,
            "status": m.SubscriberStatus.ACTIVE,
            "source": "import",
            "created_at": self.now,
            "confirmed_at": self.now,
            "status_changed_at": self.now,
            "confirm_nonce": 0,
        }

    def _consent(self, subscriber_id: int, consented_at: datetime, source: str) -> dict[str, Any]:
        return {
            "subscriber_id": subscriber_id,
            "kind": m.ConsentKind.IMPORT,
            "occurred_at": consented_at,
            "recorded_at": self.now,
            "source": source,
            "ip": None,
            "user_agent": None,
            "wording_version": None,
            "detail": self.note,
        }
