"""CSV import of people who consented elsewhere (a paper form, an older list).

Memory does not grow with the file. A first pass reads and validates every row,
keeping only the first MAX_PROBLEMS problems (and a count) and spooling the
cleaned rows to a temporary file on disk. With any invalid row and no
--skip-invalid the import stops there, so the store is left exactly as it was.
A second pass reads the spool back in chunks and writes them, all inside one
transaction: the store never holds half a file.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import os
import pickle
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import IO

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from nurture.addresses import MAX_NAME, clean_first_name, clean_timezone, normalize_email
from nurture.app import App
from nurture.audience.import_report import ImportReport, RowProblem
from nurture.audience.import_writer import SpooledRow, Writer
from nurture.errors import InputError, NurtureError
from nurture.store import db
from nurture.store import models as m
from nurture.store.db import refresh_statistics, stored_utc, transaction

REQUIRED = ("email", "consented_at", "consent_source")
OPTIONAL = ("first_name", "timezone")
COLUMNS = (
    "email",
    "first_name",
    "timezone",
    "consented_at",
    "consent_source",
)  # in the order _validate takes them
CHUNK = 5000  # rows read back and written per round of statements
MAX_PROBLEMS = 1000  # problems kept for the report; beyond that they are only counted
SHOWN_PROBLEMS = 50  # problems listed in the error when nothing is imported
EARLIEST_CONSENT = datetime(2000, 1, 1, tzinfo=UTC)
# Waits for the write lock, each as long as the store's busy timeout. The rows are
# validated and spooled already, so waiting costs nothing but time; imports that
# overlap (several files at once) then queue instead of failing.
LOCK_ATTEMPTS = 4
STATISTICS_AFTER = 1000  # rows: an import this large refreshes the planner statistics (PostgreSQL)


# A validated row as spooled between the passes:
# (line, email, key, first_name, timezone, consented_at, consent_source).
CleanRow = tuple[int, str, str, str | None, str | None, datetime, str]


# ---------------------------------------------------------------- pass 1: read and validate


# Cached: many people consented on the same day, and a file repeats its dates.
@lru_cache(maxsize=4096)
def _parse_when(raw: str, now: datetime) -> datetime:
    text = raw.strip()
    if not text:
        raise ValueError("missing: every imported person needs the date they consented")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date; use ISO 8601 like 2026-03-01 or 2026-03-01T14:30:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > now:
        raise ValueError(f"{text} is in the future")
    if when < EARLIEST_CONSENT:
        raise ValueError(f"{text} is before 2000; give the date this person actually consented")
    return when


@lru_cache(maxsize=4096)
def _clean_domain(domain: str) -> tuple[str, str] | None:
    """(domain as written in the store, its IDNA ASCII form), or None if the full check must decide.

    Domain checks are most of the cost of validating an address, and a list repeats a
    few thousand domains at most, so each is checked once, beside a plain local part.
    """
    try:
        checked = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain


def clean_email(raw: str) -> tuple[str, str]:
    """The same answer as subscribers.normalize_email, much faster for the plain addresses most
    rows hold (an ASCII dot-atom before the @); anything else goes through normalize_email."""
    candidate = raw.strip()
    local, at, domain = candidate.rpartition("@")
    if at and DOT_ATOM_TEXT.match(local) and local.lower() not in CASE_INSENSITIVE_MAILBOX_NAMES:
        forms = _clean_domain(domain)
        if forms is not None:
            normalized = f"{local}@{forms[0]}"
            lengths = (len(candidate.encode()), len(normalized.encode()), len(local) + 1 + len(forms[1]))
            if max(lengths) <= EMAIL_MAX_LENGTH:
                return normalized, normalized.casefold()
    return normalize_email(candidate)


def _clean_name(raw: str) -> str | None:
    name = raw.strip()
    # Printable text holds no control, format or line-separator characters; the rest
    # (rare) gets the full check and its message.
    if name.isprintable() and len(name) <= MAX_NAME:
        return name or None
    return clean_first_name(name)


@lru_cache(maxsize=1024)
def _clean_zone(raw: str) -> str | None:
    return clean_timezone(raw)


def _validate(fields: Sequence[str], line: int, now: datetime) -> tuple[CleanRow | None, list[RowProblem]]:
    """Check one row: `fields` are its email, first_name, timezone, consented_at and consent_source."""
    problems = []
    raw_email, raw_name, raw_zone, raw_when, source = fields
    email = key = ""
    try:
        email, key = clean_email(raw_email.strip())
    except InputError as exc:
        problems.append(RowProblem(line, "email", str(exc)))
    first_name = zone = None
    try:
        first_name = _clean_name(raw_name.strip())
    except InputError as exc:
        problems.append(RowProblem(line, "first_name", str(exc)))
    try:
        zone = _clean_zone(raw_zone.strip())
    except InputError as exc:
        problems.append(RowProblem(line, "timezone", str(exc)))
    consented_at = now
    try:
        consented_at = _parse_when(raw_when.strip(), now)
    except ValueError as exc:
        problems.append(RowProblem(line, "consented_at", str(exc)))
    source = source.strip()
    if not source:
        problems.append(
            RowProblem(
                line,
                "consent_source",
                "missing: say where this person consented (e.g. 'paper form, 2025 open day')",
            )
        )
    if problems:
        return None, problems
    return (line, email, key, first_name, zone, consented_at, source[:200]), []


def _open_csv(path: Path) -> IO[str]:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    # Opening a named pipe or a device would wait for a writer that may never come.
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise InputError(f"{path}: {kind}; give the path of a CSV file saved on disk")
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def scan_rows(path: Path, now: datetime) -> Iterator[tuple[CleanRow | None, list[RowProblem]]]:
    """Each data row of the file in order: the cleaned row, or None and its problems.

    File-level faults (missing, not UTF-8, broken quoting, missing columns) raise InputError.
    """
    with _open_csv(path) as handle:
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
        # Read as a dict of the header zipped with the values would read them: a repeated
        # column name takes its last value, extra values are ignored, and a column absent
        # from the header reads the blank appended to every row. A short row (rare) is
        # zipped for real: which of two same-named columns it reaches depends on its length.
        width = len(header)
        positions = {name: index for index, name in enumerate(header)}
        pick = itemgetter(*(positions.get(name, width) for name in COLUMNS))
        # A quoted value may span lines: report the line a record starts on.
        line = end = reader.line_num
        try:
            for values in reader:
                line, end = end + 1, reader.line_num
                if not values:  # a blank line
                    continue
                if len(values) < width:
                    record = dict(zip(header, values, strict=False))  # a short row: the rest are blank
                    yield _validate([record.get(name, "") for name in COLUMNS], line, now)
                    continue
                del values[width:]
                values.append("")
                yield _validate(pick(values), line, now)
        except UnicodeDecodeError:
            raise InputError(f"{path}, after line {end}: not UTF-8 text; save the CSV as UTF-8") from None
        except csv.Error as exc:
            raise InputError(f"{path}, line {reader.line_num}: {exc}") from None


def _spool_valid_rows(
    path: Path,
    now: datetime,
    spool: IO[bytes],
    report: ImportReport,
    checked: Callable[[int], None] | None = None,
) -> None:
    """Pass 1: count rows and problems into the report, and write the good rows to spool in chunks.
    `checked` hears of each CHUNK rows read (and of the rest at the end)."""
    batch: list[SpooledRow] = []
    # Consent times as stored, per chunk: a file repeats its dates (often a day, no time).
    stored: dict[datetime, str] = {}
    for row, problems in scan_rows(path, now):
        report.rows += 1
        if row is not None:
            _, email, key, first_name, zone, consented_at, source = row
            when = stored.get(consented_at)
            if when is None:
                when = stored[consented_at] = stored_utc(consented_at)
            batch.append((email, key, first_name, zone, when, source))
            if len(batch) == CHUNK:
                pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
                stored.clear()
                if checked:
                    checked(report.rows)
        else:
            report.invalid_count += len(problems)
            room = MAX_PROBLEMS - len(report.invalid)
            if room > 0:
                report.invalid.extend(problems[:room])
    if batch:
        pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
    if checked:
        checked(report.rows)
    spool.flush()
    spool.seek(0)


def _spooled(spool: IO[bytes]) -> Iterator[list[SpooledRow]]:
    while True:
        try:
            # Only ever reads the file this import wrote a moment ago.
            yield pickle.load(spool)
        except EOFError:
            return


@contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep what exists before the import (modules, the mapped classes, the app) out of the
    garbage collector's full passes: a large import allocates enough to set off hundreds of
    them, and walking those objects again each time cost several seconds per million rows.
    Objects made during the import are collected as usual; afterwards all are as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def import_csv(
    app: App,
    path: Path,
    now: datetime,
    *,
    skip_invalid: bool = False,
    enroll_subscribers: bool = True,
    progress: Callable[[int], None] | None = None,
    checked: Callable[[int], None] | None = None,
    note: str | None = None,
) -> ImportReport:
    """Import the people in the CSV file `path` (see the module docstring). `checked` hears how
    many rows the first pass has read, `progress` how many more the second has written; `note`
    is the consent records' detail (default: "imported from <file name>")."""
    report = ImportReport()
    with _long_lived_objects_frozen(), tempfile.TemporaryFile(prefix="nurture-import-") as spool:
        _spool_valid_rows(path, now, spool, report, checked)
        if report.invalid_count and not skip_invalid:
            shown = "\n".join(f"  {path}, {problem}" for problem in report.invalid[:SHOWN_PROBLEMS])
            hidden = report.invalid_count - min(len(report.invalid), SHOWN_PROBLEMS)
            more = f"\n  ... and {hidden} more" if hidden else ""
            raise InputError(
                f"{report.invalid_count} problem(s) in {report.rows} "
                f"rows; nothing was imported:\n{shown}{more}\n"
                "Fix these rows, or run again with --skip-invalid to import only the good ones."
            )
        secrets = app.config.secrets.verification_keys()
        scanned = report
        for _ in range(LOCK_ATTEMPTS):
            # Each attempt starts from the first pass's figures: a failed one wrote nothing.
            report = dataclasses.replace(scanned)
            spool.seek(0)
            try:
                with transaction(app.engine) as session:
                    has_suppressions = session.scalar(select(m.Suppression.address_hash).limit(1)) is not None
                    # Read once per import (reads only, beside this write transaction): its
                    # people all start the series as published when it began.
                    campaigns = (
                        [
                            c
                            for c in app.catalog.refresh(app.engine, create=False).values()
                            if c.trigger == "confirmed"
                        ]
                        if enroll_subscribers
                        else []
                    )
                    writer = Writer(
                        session,
                        report,
                        now,
                        note or f"imported from {path.name}",
                        campaigns,
                        secrets,
                        has_suppressions,
                    )
                    for chunk in _spooled(spool):
                        writer.write(chunk)
                        if progress:
                            progress(len(chunk))
                if report.rows >= STATISTICS_AFTER:
                    refresh_statistics(app.engine, ("subscribers", "enrollments", "consent_events"))
                return report
            except OperationalError as exc:
                if "database is locked" not in str(exc.orig):
                    raise
    raise NurtureError(
        f"{path}: nothing was imported: another process (an import or a sending pass) held the store "
        f"for more than {LOCK_ATTEMPTS * db.BUSY_TIMEOUT_MS / 1000:g} "
        "s. Run the import again once it has finished."
    )
