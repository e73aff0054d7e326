"""What a claim is, and the INSERT that makes claims: delivery rows, unique per (subscriber,
stream, step key), so a second process that wants the same email hits the key and moves on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy.orm import Session

from nurture.sending.claim_statements import CLAIMED_SINCE, LAST_DELIVERY, new_key_prefix
from nurture.sending.streams import NEWSLETTER_STEP_KEY
from nurture.store.statements import statements_for

READ_BACK_LIMIT = (
    2**62
)  # largest delivery id below which new ids surely follow the largest (SQLite: up to 2**63-1)

# What a claim INSERT returns: delivery id, subscriber id, stream, step position, step key, series version.
Inserted = tuple[int, int, str, int, str, int | None, str | None]


class Claim(NamedTuple):
    """One claimed delivery with what rendering needs.

    A named tuple rather than a frozen dataclass: a pass makes one per email, and a
    tuple is built several times faster."""

    delivery_id: int
    subscriber_id: int
    email: str
    first_name: str | None
    stream: str
    step: int  # the step's position in its version (1 for a newsletter)
    newsletter_id: int | None = None
    step_key: str = NEWSLETTER_STEP_KEY
    series_version: int | None = None  # the published version a series step is sent from
    message_key: str | None = None  # what the provider echoes in its events (see Delivery.message_key)


def insert_claims(
    session: Session,
    name: str,
    build: Any,
    ids: list[int],
    params: dict[str, Any],
    *,
    worker: str,
    now: datetime,
) -> list[Inserted]:
    """Run the claim INSERT `build` (cached under `name`) per chunk of ids, as `worker` at `now`;
    the deliveries it made (those that hit the unique key are not among them)."""
    if not ids:
        return []
    connection = session.connection()
    statements = statements_for(connection)
    returning = statements.built(name, build)
    plain = statements.built(f"{name}, read back", lambda built: build(built, False))
    result: list[Inserted] = []
    for chunk in statements.id_chunks(ids):
        values = {
            **params,
            "ids": chunk,
            "worker": worker,
            "claimed_at": now,
            "key_prefix": new_key_prefix(),
        }
        # On SQLite, under this transaction's write lock, nobody else inserts and each new
        # row takes the next id after the largest: the rows are read back by id in one
        # step (IdStatements.rows) rather than returned one driver step each. Past
        # READ_BACK_LIMIT SQLite may pick ids at random, so RETURNING it is.
        since = (connection.execute(LAST_DELIVERY).scalar() or 0) if statements.json_ids else None
        if since is None or since >= READ_BACK_LIMIT:
            result += cast(
                "list[Inserted]", [tuple(row) for row in connection.execute(returning, values).all()]
            )
            continue
        made = connection.execute(plain, values).rowcount
        inserted = cast("list[Inserted]", statements.rows(connection, CLAIMED_SINCE, {"since": since}))
        if len(inserted) != made:
            # Rolls the claim back: nothing is sent from a claim that cannot be read back whole.
            raise RuntimeError(
                f"claimed {made} deliveries but read {len(inserted)} back; nothing was claimed"
            )
        result += inserted
    return result
