"""Property-based tests for the CSV import: whatever the file holds, the answer is a report
or one clear error that names the line, and a refused file writes nothing.

The rows mix realistic values with the hostile ones the hardening issue found (year-1
dates, dates in the future, non-ASCII local parts, control characters, stray columns).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.errors import NurtureError
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at, make_app

NOW = at("2026-12-01 18:00")
HEADER = ["email", "first_name", "timezone", "consented_at", "consent_source"]

EMAILS = st.one_of(
    st.sampled_from(
        ["sam@example.com", "SAM@Example.com", "ana@example.org", "user@bücher.example", "josé@example.com"]
    ),
    st.sampled_from(
        [
            "",
            "not-an-address",
            "a@b",
            "@example.com",
            "x@example..com",
            "a b@example.com",
            "a@example.com\x00",
        ]
    ),
    st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,5})?@[a-z]{2,8}\.(com|org|example)", fullmatch=True),
)
NAMES = st.one_of(st.sampled_from(["", "Sam", "Zoë", "x" * 101, "a\x01b", "Ana-María"]), st.text(max_size=12))
ZONES = st.sampled_from(
    ["", "America/Chicago", "Europe/Berlin", "Asia/Kolkata", "Mars/Olympus", "UTC", "+05:00"]
)
DATES = st.one_of(
    st.sampled_from(
        [
            "2026-11-30T10:00:00Z",
            "2026-11-30 10:00",
            "2024-02-29",
            "0001-01-01T00:00:00+05:00",
            "1999-12-31T23:59:59Z",
            "2099-01-01T00:00:00Z",
            "yesterday",
            "",
            "2026-13-01",
        ]
    ),
    st.datetimes().map(lambda moment: moment.isoformat()),
)
SOURCES = st.sampled_from(["open day sign-up sheet", "", "web form", "x" * 300])
ROW = st.tuples(EMAILS, NAMES, ZONES, DATES, SOURCES).map(list)
# Now and then a row with a cell too many or too few.
ODD_ROW = st.one_of(ROW, ROW.map(lambda row: row[:3]), ROW.map(lambda row: [*row, "extra"]))
ROWS = st.lists(ODD_ROW, min_size=1, max_size=12)

PROBLEM = re.compile(r"^line \d+: ")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    folder = tmp_path_factory.mktemp("import-properties")
    app = make_app(folder)
    yield app, folder
    app.close()


def write(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO(newline="")
    # "\r\n" line ends make the writer quote a cell holding either character, so the
    # file has exactly one record per row (a bare "\r" in a cell would end a record).
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass", newline="")
    return path


def counts(app: App) -> tuple[int, int]:
    with transaction(app.engine) as session:
        people = session.scalar(select(func.count()).select_from(m.Subscriber)) or 0
        consents = session.scalar(select(func.count()).select_from(m.ConsentEvent)) or 0
    return people, consents


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=ROWS, skip_invalid=st.booleans())
def test_any_file_gets_a_report_or_one_clear_error_and_a_refusal_writes_nothing(
    workspace: tuple[App, Path], rows: list[list[str]], skip_invalid: bool
) -> None:
    app, folder = workspace
    path = write(folder / "people.csv", rows)
    before = counts(app)
    try:
        report = import_csv(app, path, NOW, skip_invalid=skip_invalid)
    except NurtureError as exc:
        # Refused: said in words that name the file's lines, and nothing was written.
        assert counts(app) == before
        assert str(exc).strip()
        assert "Traceback" not in str(exc)
        return
    assert report.rows == len(rows)
    assert all(PROBLEM.match(str(problem)) for problem in report.invalid)
    if not skip_invalid:
        assert report.invalid_count == 0  # a file with a bad row is refused, never half-imported
    people, consents = counts(app)
    assert people - before[0] == report.created
    # Every person added or activated has consent evidence recorded with them.
    assert consents - before[1] >= report.created + report.activated


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_or_imported_never_a_traceback(
    workspace: tuple[App, Path], data: bytes
) -> None:
    app, folder = workspace
    path = folder / "bytes.csv"
    path.write_bytes(b"email,first_name,timezone,consented_at,consent_source\n" + data)
    before = counts(app)
    try:
        import_csv(app, path, NOW, skip_invalid=False)
    except NurtureError:
        assert counts(app) == before
