"""CSV import of people who consented elsewhere (a paper form, an older list).

All rows are validated before anything is written: with any invalid row and no
--skip-invalid, the store is left exactly as it was. The store is read and
written in chunks, never a row per round trip, so 100,000 rows take seconds.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from nurture.app import App
from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.db import chunks, insert_rows, transaction
from nurture.audience.addresses import clean_first_name, clean_timezone, normalize_email
from nurture.audience.enrollment import enroll
from nurture.tokens import address_hash

REQUIRED = ("email", "consented_at", "consent_source")
OPTIONAL = ("first_name", "timezone")
CHUNK = 500


@dataclass
class RowProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.message}"


@dataclass
class ImportRow:
    line: int
    email: str
    key: str
    first_name: str | None
    timezone: str | None
    consented_at: datetime
    consent_source: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    activated: int = 0
    merged: int = 0  # already active, or a duplicate line within the file
    invalid: list[RowProblem] = field(default_factory=list)
    skipped_erased: int = 0
    skipped_unsubscribed: int = 0
    enrolled: int = 0


def _parse_when(raw: str, now: datetime) -> datetime:
    text = raw.strip()
    if not text:
        raise ValueError("missing: every imported person needs the date they consented")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date; use ISO 8601 like 2026-03-01 or 2026-03-01T14:30:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when > now:
        raise ValueError(f"{text} is in the future")
    return when


def read_rows(path: Path, now: datetime) -> tuple[list[ImportRow], list[RowProblem], int]:
    """Parse and validate the file. Returns good rows, problems, and the number of data rows."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    rows: list[ImportRow] = []
    problems: list[RowProblem] = []
    count = 0
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader, [])]
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
        except csv.Error as exc:
            raise InputError(f"{path}, line 1: {exc}") from None
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise InputError(
                f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                f"the header must name {', '.join(REQUIRED + OPTIONAL)}"
            )
        # A quoted value may span lines: report the line a record starts on.
        line = end = reader.line_num
        try:
            for values in reader:
                line, end = end + 1, reader.line_num
                if not values:  # a blank line
                    continue
                count += 1
                record: dict[str, str | None] = dict(zip(header, values))
                row, row_problems = _validate(record, line, now)
                if row is not None:
                    rows.append(row)
                problems.extend(row_problems)
        except UnicodeDecodeError:
            raise InputError(f"{path}, after line {end}: not UTF-8 text; save the CSV as UTF-8") from None
        except csv.Error as exc:
            raise InputError(f"{path}, line {reader.line_num}: {exc}") from None
    return rows, problems, count


def _validate(record: dict[str, str | None], line: int, now: datetime) -> tuple[ImportRow | None, list[RowProblem]]:
    problems = []

    def value(column: str) -> str:
        return (record.get(column) or "").strip()

    email = key = ""
    try:
        email, key = normalize_email(value("email"))
    except InputError as exc:
        problems.append(RowProblem(line, "email", str(exc)))
    first_name = zone = None
    try:
        first_name = clean_first_name(value("first_name"))
    except InputError as exc:
        problems.append(RowProblem(line, "first_name", str(exc)))
    try:
        zone = clean_timezone(value("timezone"))
    except InputError as exc:
        problems.append(RowProblem(line, "timezone", str(exc)))
    consented_at = now
    try:
        consented_at = _parse_when(value("consented_at"), now)
    except ValueError as exc:
        problems.append(RowProblem(line, "consented_at", str(exc)))
    source = value("consent_source")
    if not source:
        problems.append(RowProblem(line, "consent_source", "missing: say where this person consented (e.g. 'paper form, 2025 open day')"))
    if problems:
        return None, problems
    return ImportRow(line, email, key, first_name, zone, consented_at, source[:200]), []


def import_csv(
    app: App,
    path: Path,
    now: datetime,
    *,
    skip_invalid: bool = False,
    enroll_subscribers: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    rows, problems, count = read_rows(path, now)
    report = ImportReport(rows=count, invalid=problems)
    if problems and not skip_invalid:
        shown = "\n".join(f"  {path}, {problem}" for problem in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise InputError(
            f"{len(problems)} problem(s) in {count} rows; nothing was imported:\n{shown}{more}\n"
            "Fix these rows, or run again with --skip-invalid to import only the good ones."
        )

    # Duplicate lines in the file merge into one person; later lines fill in blanks.
    by_key: dict[str, ImportRow] = {}
    for row in rows:
        first = by_key.get(row.key)
        if first is None:
            by_key[row.key] = row
        else:
            report.merged += 1
            first.first_name = first.first_name or row.first_name
            first.timezone = first.timezone or row.timezone

    secret = app.config.secrets.require_secret_key()
    source_note = f"imported from {path.name}"
    with transaction(app.engine) as session:
        new_ids: list[int] = []
        activated_ids: list[int] = []
        consent_rows: list[dict[str, object]] = []
        keys = list(by_key)
        for chunk in chunks(keys, CHUNK):
            digests = {key: address_hash(secret, key) for key in chunk}
            erased = set(
                session.scalars(select(m.Suppression.address_hash).where(m.Suppression.address_hash.in_(list(digests.values()))))
            )
            existing = {
                row.email_key: row for row in session.scalars(select(m.Subscriber).where(m.Subscriber.email_key.in_(chunk)))
            }
            fresh = []
            for key in chunk:
                row = by_key[key]
                if digests[key] in erased:
                    report.skipped_erased += 1
                    continue
                known = existing.get(key)
                if known is None:
                    fresh.append(row)
                elif known.status == m.SubscriberStatus.ACTIVE:
                    report.merged += 1
                    known.first_name = known.first_name or row.first_name
                    known.timezone = known.timezone or row.timezone
                elif known.status == m.SubscriberStatus.PENDING:
                    known.status = m.SubscriberStatus.ACTIVE
                    known.status_changed_at = now
                    known.confirmed_at = known.confirmed_at or now
                    known.first_name = known.first_name or row.first_name
                    known.timezone = known.timezone or row.timezone
                    activated_ids.append(known.id)
                    consent_rows.append(_consent(known.id, row, now, source_note))
                else:
                    # They left (or bounced, or complained): an import never overrides that.
                    report.skipped_unsubscribed += 1
            if fresh:
                table = m.Subscriber.__table__
                inserted = insert_rows(
                    session,
                    table,
                    [
                        {
                            "email": row.email,
                            "email_key": row.key,
                            "first_name": row.first_name,
                            "timezone": row.timezone,
                            "status": m.SubscriberStatus.ACTIVE,
                            "source": "import",
                            "created_at": now,
                            "confirmed_at": now,
                            "status_changed_at": now,
                            "confirm_nonce": 0,
                        }
                        for row in fresh
                    ],
                    returning=(table.c.id, table.c.email_key),
                )
                # Matched up by address, so the order rows come back in does not matter.
                for subscriber_id, key in inserted:
                    new_ids.append(subscriber_id)
                    consent_rows.append(_consent(subscriber_id, by_key[key], now, source_note))
            if progress:
                progress(len(chunk))
        insert_rows(session, m.ConsentEvent.__table__, consent_rows)
        report.created = len(new_ids)
        report.activated = len(activated_ids)
        if enroll_subscribers:
            report.enrolled = enroll(session, app, new_ids + activated_ids, now)
    return report


def _consent(subscriber_id: int, row: ImportRow, now: datetime, note: str) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "kind": m.ConsentKind.IMPORT,
        "occurred_at": row.consented_at,
        "recorded_at": now,
        "source": row.consent_source,
        "ip": None,
        "user_agent": None,
        "wording_version": None,
        "detail": note,
    }
