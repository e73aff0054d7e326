"""CSV import: validation with exact line numbers, all-or-nothing, merging, consent records."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.audience.signup import confirm, subscribe, unsubscribe_email
from nurture.errors import InputError
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.csv_files import HEADER, write_csv
from tests.support.factories import active_subscribers, at, consent_events, enrollments_of, write_project
from tests.support.processes import run_nurture

NOW = at("2026-12-01 18:00")  # Tuesday, 10:00 in Los Angeles
ZONES = ["", "America/Chicago", "Europe/London", "Asia/Kolkata", "Australia/Sydney"]

# 0-based data row -> (kind, the row's values). One problem per row.
BAD_ROWS: dict[int, tuple[str, list[str]]] = {
    17: ("email", ["not-an-email", "Bea", "", "2025-03-01", "web form"]),
    1234: ("consented_at", ["missing.date@example.com", "Cal", "", "", "web form"]),
    3333: ("consent_source", ["missing.source@example.com", "Dee", "", "2025-03-01", ""]),
    5000: ("consented_at", ["future@example.com", "Eli", "", "2027-01-01", "web form"]),
    7777: ("timezone", ["bad.zone@example.com", "Fay", "Mars/Olympus_Mons", "2025-03-01", "web form"]),
    9000: (
        "first_name",
        ["crlf@example.com", "Eve\r\nBcc: victim@example.com", "", "2025-03-01", "web form"],
    ),
    9500: ("first_name", ["lf@example.com", "Gus\nBcc: victim@example.com", "", "2025-03-01", "web form"]),
    9998: ("email", ["someone@", "Hal", "", "2025-03-01", "web form"]),
}
BAD_ADDRESSES = [values[0] for _, values in BAD_ROWS.values()]


def good_row(i: int) -> list[str]:
    day = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i % 700, minutes=i)
    when = [
        day.date().isoformat(),
        day.strftime("%Y-%m-%dT%H:%M:%SZ"),
        day.astimezone(timezone(timedelta(hours=-5))).isoformat(),
    ][i % 3]
    source = "paper form, open day 2025" if i % 2 else "website signup"
    email = f"Person{i}@Example.COM" if i % 10 == 0 else f"person{i}@example.com"
    return [email, f"P{i}" if i % 7 else "", ZONES[i % len(ZONES)], when, source]


def consented_at(i: int) -> datetime:
    value = good_row(i)[3]
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class BigFile:
    path: Path
    rows: int
    bad_lines: list[int]  # the line (1-based, header is line 1) each bad record starts on
    good_indexes: list[int]


def physical_lines(text: str) -> int:
    """How many line breaks Python's csv/io count in text (\\r\\n, \\r and \\n each count once)."""
    return len(re.findall(r"\r\n|\r|\n", text))


def write_big_csv(path: Path, rows: int = 10_000) -> BigFile:
    chunks: list[str] = []
    line = 1  # the line the next record starts on

    def add(values: list[str]) -> None:
        nonlocal line
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\r\n").writerow(values)
        chunks.append(buffer.getvalue())
        line += physical_lines(chunks[-1])

    add(HEADER)
    bad_lines: list[int] = []
    good: list[int] = []
    for i in range(rows):
        if i in BAD_ROWS:
            bad_lines.append(line)
            add(BAD_ROWS[i][1])
        else:
            good.append(i)
            add(good_row(i))
    path.write_text("".join(chunks), encoding="utf-8", newline="")
    return BigFile(path, rows, bad_lines, good)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> BigFile:
    return write_big_csv(tmp_path_factory.mktemp("csv") / "people.csv")


def snapshot(app: App) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, for 'nothing changed' checks."""
    with transaction(app.engine) as session:
        return {
            table.name: sorted(tuple(row) for row in session.execute(select(table)).all())
            for table in m.Base.metadata.sorted_tables
        }


def counts(app: App) -> dict[str, int]:
    with transaction(app.engine) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in m.Base.metadata.sorted_tables
        }


def subscriber(app: App, key: str) -> m.Subscriber | None:
    with transaction(app.engine) as session:
        return session.scalar(select(m.Subscriber).where(m.Subscriber.email_key == key))


def problem_lines(message: str) -> list[int]:
    return [int(number) for number in re.findall(r", line (\d+): ", message)]


def confirm_token(app: App, subscriber_id: int) -> str:
    from nurture import links

    with transaction(app.engine) as session:
        nonce = session.get(m.Subscriber, subscriber_id).confirm_nonce
    return links.confirm_url(app.config, subscriber_id, nonce, NOW).rsplit("/", 1)[1]


# ---------------------------------------------------------------- the generated 10,000-row file


def test_generated_file_has_multi_line_records(big_csv: BigFile):
    # Two names hold a line break, so line numbers after them differ from record numbers.
    assert big_csv.bad_lines == [19, 1236, 3335, 5002, 7779, 9002, 9503, 10002]
    text = big_csv.path.read_text(encoding="utf-8")
    assert physical_lines(text) == 10_003


def test_bad_rows_without_skip_invalid_write_nothing(app: App, big_csv: BigFile):
    active_subscribers(app, 5, NOW, prefix="seed")
    subscribe(app, "waiting@example.com", NOW)
    before = snapshot(app)
    before_counts = counts(app)
    assert before_counts["subscribers"] == 6 and before_counts["consent_events"] == 6

    with pytest.raises(InputError) as caught:
        import_csv(app, big_csv.path, NOW)
    message = str(caught.value)

    assert problem_lines(message) == big_csv.bad_lines
    assert message.startswith(f"{len(BAD_ROWS)} problem(s) in 10000 rows; nothing was imported:")
    assert f"{big_csv.path}, line 19: email: 'not-an-email' is not a valid email address" in message
    assert "line 1236: consented_at: missing" in message
    assert "line 3335: consent_source: missing" in message
    assert "line 5002: consented_at: 2027-01-01 is in the future" in message
    assert "line 7779: timezone: 'Mars/Olympus_Mons' is not an IANA time zone" in message
    assert "line 9002: first_name: first name contains a line break" in message
    assert "line 9503: first_name: first name contains a line break" in message
    assert "--skip-invalid" in message
    assert counts(app) == before_counts
    assert snapshot(app) == before


def test_bad_rows_with_skip_invalid_import_the_good_ones(app: App, big_csv: BigFile):
    active_subscribers(app, 5, NOW, prefix="seed")
    report = import_csv(app, big_csv.path, NOW, skip_invalid=True)

    good = len(big_csv.good_indexes)
    assert good == 10_000 - len(BAD_ROWS)
    assert report.rows == 10_000
    assert [problem.line for problem in report.invalid] == big_csv.bad_lines
    assert [problem.column for problem in report.invalid] == [
        kind for _, (kind, _) in sorted(BAD_ROWS.items())
    ]
    assert (report.created, report.activated, report.merged) == (good, 0, 0)
    assert (report.skipped_erased, report.skipped_unsubscribed) == (0, 0)
    assert report.enrolled == good

    with transaction(app.engine) as session:
        statuses = dict(
            session.execute(select(m.Subscriber.status, func.count()).group_by(m.Subscriber.status)).all()
        )
        assert statuses == {m.SubscriberStatus.ACTIVE: good + 5}
        imported = session.execute(
            select(m.ConsentEvent.kind, func.count())
            .where(m.ConsentEvent.detail == "imported from people.csv")
            .group_by(m.ConsentEvent.kind)
        ).all()
        assert imported == [(m.ConsentKind.IMPORT, good)]
        enrolled = session.execute(
            select(
                m.Enrollment.campaign,
                m.Enrollment.status,
                m.Enrollment.next_step,
                m.Enrollment.next_due_at,
                func.count(),
            ).group_by(
                m.Enrollment.campaign, m.Enrollment.status, m.Enrollment.next_step, m.Enrollment.next_due_at
            )
        ).all()
        assert enrolled == [("kap-intro", m.EnrollmentStatus.ACTIVE, 1, NOW, good + 5)]
        stored = set(session.scalars(select(m.Subscriber.email_key)))
    for address in BAD_ADDRESSES:
        assert address.casefold() not in stored

    # Every good row: its fields and its consent evidence, as written in the file.
    with transaction(app.engine) as session:
        stored_rows = {
            row.email_key: row
            for row in session.execute(
                select(
                    m.Subscriber.email_key,
                    m.Subscriber.first_name,
                    m.Subscriber.timezone,
                    m.ConsentEvent.occurred_at,
                    m.ConsentEvent.source,
                )
                .join(m.ConsentEvent, m.ConsentEvent.subscriber_id == m.Subscriber.id)
                .where(m.ConsentEvent.kind == m.ConsentKind.IMPORT, m.Subscriber.source == "import")
            )
        }
    assert len(stored_rows) == good
    for i in big_csv.good_indexes:
        email, first_name, zone, _, source = good_row(i)
        row = stored_rows[email.casefold()]
        assert (row.first_name, row.timezone) == (first_name or None, zone or None), i
        assert (row.occurred_at, row.source) == (consented_at(i), source), i

    # One row, in detail: normalized address, fields, and its consent evidence.
    person = subscriber(app, "person4420@example.com")
    assert person is not None
    assert person.email == "Person4420@example.com"  # domain lower-cased, local part kept
    assert (person.first_name, person.timezone, person.status, person.source) == (
        "P4420",
        None,
        m.SubscriberStatus.ACTIVE,
        "import",
    )
    assert person.confirmed_at == NOW
    [event] = consent_events(app, person.id)
    assert event.kind == m.ConsentKind.IMPORT
    assert event.occurred_at == consented_at(4420)
    assert event.recorded_at == NOW
    assert event.source == "website signup"
    assert event.wording_version is None  # the practice's wording was not what they saw
    other = subscriber(app, "person4411@example.com")
    assert other is not None
    assert (other.first_name, other.timezone) == ("P4411", "America/Chicago")
    [event] = consent_events(app, other.id)
    assert event.source == "paper form, open day 2025"
    assert event.occurred_at == consented_at(4411)
    assert event.occurred_at.tzinfo is not None


def test_reimporting_the_same_file_merges_everyone(app: App, big_csv: BigFile):
    import_csv(app, big_csv.path, NOW, skip_invalid=True)
    before = counts(app)
    report = import_csv(app, big_csv.path, NOW + timedelta(days=1), skip_invalid=True)
    assert (report.created, report.activated, report.merged) == (0, 0, len(big_csv.good_indexes))
    assert report.enrolled == 0
    assert counts(app) == before


# ---------------------------------------------------------------- small files


def test_duplicates_within_the_file_merge(app: App, tmp_path: Path):
    path = write_csv(
        tmp_path / "dupes.csv",
        [
            ["Sam@Example.com", "", "", "2025-01-01", "form A"],
            ["other@example.com", "Olu", "", "2025-01-05", "form A"],
            ["sam@example.com", "Sam", "Europe/London", "2025-02-01", "form B"],
            ["SAM@EXAMPLE.COM", "Samuel", "Asia/Tokyo", "2025-03-01", "form C"],
        ],
    )
    report = import_csv(app, path, NOW)
    assert (report.rows, report.created, report.merged) == (4, 2, 2)
    assert counts(app)["subscribers"] == 2
    sam = subscriber(app, "sam@example.com")
    assert sam is not None
    # The first line wins; later lines only fill blanks.
    assert (sam.email, sam.first_name, sam.timezone) == ("Sam@example.com", "Sam", "Europe/London")
    [event] = consent_events(app, sam.id)
    assert (event.source, event.occurred_at) == ("form A", at("2025-01-01 00:00"))
    assert len(enrollments_of(app, sam.id)) == 1


def test_existing_active_subscriber_is_merged(app: App, tmp_path: Path):
    kim = subscribe(app, "kim@example.com", NOW - timedelta(days=2)).subscriber_id
    confirm(app, confirm_token(app, kim), NOW - timedelta(days=1))
    before_events = [(e.kind, e.occurred_at) for e in consent_events(app, kim)]
    path = write_csv(
        tmp_path / "kim.csv", [["KIM@example.com", "Kim", "America/Denver", "2025-01-01", "paper form"]]
    )

    report = import_csv(app, path, NOW)

    assert (report.created, report.activated, report.merged, report.enrolled) == (0, 0, 1, 0)
    person = subscriber(app, "kim@example.com")
    assert person is not None
    assert (person.status, person.email) == (m.SubscriberStatus.ACTIVE, "kim@example.com")
    assert (person.first_name, person.timezone) == ("Kim", "America/Denver")  # blanks filled in
    assert [(e.kind, e.occurred_at) for e in consent_events(app, kim)] == before_events
    assert len(enrollments_of(app, kim)) == 1
    assert counts(app)["subscribers"] == 1


def test_existing_names_are_not_overwritten(app: App, tmp_path: Path):
    kim = subscribe(app, "kim@example.com", NOW, first_name="Kimberly", timezone="Europe/Paris").subscriber_id
    confirm(app, confirm_token(app, kim), NOW)
    import_csv(
        app,
        write_csv(tmp_path / "kim.csv", [["kim@example.com", "Kim", "America/Denver", "2025-01-01", "x"]]),
        NOW,
    )
    person = subscriber(app, "kim@example.com")
    assert person is not None
    assert (person.first_name, person.timezone) == ("Kimberly", "Europe/Paris")


def test_pending_subscriber_is_activated_by_consent_evidence(app: App, tmp_path: Path):
    lee = subscribe(app, "lee@example.com", NOW - timedelta(hours=1)).subscriber_id
    path = write_csv(
        tmp_path / "lee.csv",
        [["lee@example.com", "Lee", "", "2025-06-01T10:00:00+02:00", "clinic intake form"]],
    )
    report = import_csv(app, path, NOW)
    assert (report.created, report.activated, report.enrolled) == (0, 1, 1)
    person = subscriber(app, "lee@example.com")
    assert person is not None
    assert person.status == m.SubscriberStatus.ACTIVE
    assert [(e.kind, e.source, e.occurred_at) for e in consent_events(app, lee)] == [
        (m.ConsentKind.OPT_IN, "cli", NOW - timedelta(hours=1)),
        (m.ConsentKind.IMPORT, "clinic intake form", at("2025-06-01 08:00")),
    ]
    assert [e.campaign for e in enrollments_of(app, lee)] == ["kap-intro"]


def test_unsubscribed_subscriber_is_not_reactivated(app: App, tmp_path: Path):
    ana = subscribe(app, "ana@example.com", NOW - timedelta(days=3)).subscriber_id
    confirm(app, confirm_token(app, ana), NOW - timedelta(days=3))
    assert unsubscribe_email(app, "ana@example.com", NOW - timedelta(days=1), reason="too many emails")
    before = snapshot(app)
    path = write_csv(tmp_path / "ana.csv", [["ana@example.com", "Ana", "", "2025-01-01", "paper form"]])

    report = import_csv(app, path, NOW)

    assert (report.created, report.activated, report.merged, report.skipped_unsubscribed) == (0, 0, 0, 1)
    assert report.enrolled == 0
    person = subscriber(app, "ana@example.com")
    assert person is not None and person.status == m.SubscriberStatus.UNSUBSCRIBED
    assert [e.kind for e in consent_events(app, ana)] == [
        m.ConsentKind.OPT_IN,
        m.ConsentKind.CONFIRM,
        m.ConsentKind.UNSUBSCRIBE,
    ]
    assert [e.status for e in enrollments_of(app, ana)] == [m.EnrollmentStatus.STOPPED]
    assert snapshot(app) == before


def test_quoted_fields_with_commas_and_quotes(app: App, tmp_path: Path):
    path = tmp_path / "quoted.csv"
    path.write_text(
        "email,first_name,timezone,consented_at,consent_source\n"
        '"jo@example.com","Mary, Jo",America/Chicago,2025-01-01,"paper form, ""Spring"" open day, 2025"\n'
        "max@example.com,Max,,2025-01-02,plain\n",
        encoding="utf-8",
    )
    report = import_csv(app, path, NOW)
    assert (report.rows, report.created, report.invalid) == (2, 2, [])
    jo = subscriber(app, "jo@example.com")
    assert jo is not None
    assert (jo.first_name, jo.timezone) == ("Mary, Jo", "America/Chicago")
    [event] = consent_events(app, jo.id)
    assert event.source == 'paper form, "Spring" open day, 2025'


def test_file_with_a_bom_and_any_column_order(app: App, tmp_path: Path):
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffConsent_Source,Email,consented_at,First_Name\r\n"
        "Excel sheet,zoe@example.com,2025-04-01,Zoë\r\n".encode("utf-8")
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = import_csv(app, path, NOW)
    assert (report.rows, report.created, report.invalid) == (1, 1, [])
    zoe = subscriber(app, "zoe@example.com")
    assert zoe is not None and zoe.first_name == "Zoë"
    [event] = consent_events(app, zoe.id)
    assert event.source == "Excel sheet"


def test_blank_lines_are_ignored_and_do_not_shift_line_numbers(app: App, tmp_path: Path):
    path = tmp_path / "blank.csv"
    path.write_text(
        "email,first_name,timezone,consented_at,consent_source\n"
        "\n"
        "a@example.com,A,,2025-01-01,form\n"
        "\n"
        "nope,B,,2025-01-01,form\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    assert problem_lines(str(caught.value)) == [5]
    assert str(caught.value).startswith("1 problem(s) in 2 rows")


def test_row_with_several_problems_lists_each(app: App, tmp_path: Path):
    path = write_csv(tmp_path / "multi.csv", [["x", "Ann\rBob", "Moon/Base", "yesterday", ""]])
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    message = str(caught.value)
    assert message.startswith("5 problem(s) in 1 rows")
    for column in ("email", "first_name", "timezone", "consented_at", "consent_source"):
        assert f"{path}, line 2: {column}: " in message
    assert "'yesterday' is not a date; use ISO 8601" in message


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (["email", "first_name", "timezone", "consented_at"], "consent_source"),
        (["e-mail", "first_name", "consented_at", "consent_source"], "email"),
        (["email", "first_name"], "consented_at, consent_source"),
    ],
)
def test_missing_column_header(app: App, tmp_path: Path, header: list[str], missing: str):
    path = write_csv(tmp_path / "cols.csv", [["a@example.com", "A", "", ""][: len(header)]], header=header)
    before = snapshot(app)
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    assert str(caught.value) == (
        f"{path}, line 1: missing column(s) {missing}; "
        "the header must name email, consented_at, consent_source, first_name, timezone"
    )
    assert snapshot(app) == before


def test_empty_file_and_missing_file(app: App, tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="line 1: missing column"):
        import_csv(app, empty, NOW)
    with pytest.raises(InputError, match="file not found"):
        import_csv(app, tmp_path / "absent.csv", NOW)


def test_not_utf8(app: App, tmp_path: Path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "email,first_name,timezone,consented_at,consent_source\nj@example.com,Jos\xe9,,2025-01-01,form\n".encode(
            "latin-1"
        )
    )
    with pytest.raises(InputError, match="not UTF-8 text; save the CSV as UTF-8"):
        import_csv(app, path, NOW)
    assert counts(app)["subscribers"] == 0


def test_no_enroll(app: App, tmp_path: Path):
    path = write_csv(tmp_path / "quiet.csv", [["q@example.com", "Q", "", "2025-01-01", "form"]])
    report = import_csv(app, path, NOW, enroll_subscribers=False)
    assert (report.created, report.enrolled) == (1, 0)
    assert counts(app)["enrollments"] == 0


# ---------------------------------------------------------------- through the real command


def test_cli_import_reports_line_numbers_and_exits_1(tmp_path: Path):
    write_project(tmp_path)
    write_csv(
        tmp_path / "signups.csv",
        [
            ["ok1@example.com", "One", "", "2025-01-01", "form"],
            ["broken-address", "Two", "", "2025-01-01", "form"],
            ["ok2@example.com", "Three\nLines", "", "2025-01-01", "form"],
            ["ok3@example.com", "Four", "", "", "form"],
            ["ok4@example.com", "Five", "", "2025-01-01", "form"],
        ],
    )
    result = run_nurture(tmp_path, "import", "signups.csv", "--now", "2026-12-01T18:00:00Z")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: 3 problem(s) in 5 rows; nothing was imported:")
    assert problem_lines(result.stderr) == [3, 4, 6]
    assert "signups.csv, line 3: email: 'broken-address' is not a valid email address" in result.stderr

    listing = run_nurture(tmp_path, "subscribers", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.strip().endswith("0 subscriber(s)")

    result = run_nurture(tmp_path, "import", "signups.csv", "--skip-invalid", "--now", "2026-12-01T18:00:00Z")
    assert result.returncode == 0, result.stderr
    assert problem_lines(result.stderr) == [3, 4, 6]
    assert all(line.startswith("skipped signups.csv, line ") for line in result.stderr.splitlines())
    assert result.stdout.strip() == (
        "5 rows: 2 added, 0 activated, 0 merged, 3 invalid, 0 erased (refused), "
        "0 unsubscribed (left alone); 2 enrolled"
    )
    listing = run_nurture(tmp_path, "subscribers", "list", "--status", "active")
    assert "ok1@example.com" in listing.stdout and "ok4@example.com" in listing.stdout
    assert listing.stdout.strip().endswith("2 subscriber(s)")


def test_cli_import_missing_column_exits_1(tmp_path: Path):
    write_project(tmp_path)
    write_csv(tmp_path / "cols.csv", [["a@example.com", "A"]], header=["email", "first_name"])
    result = run_nurture(tmp_path, "import", "cols.csv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: cols.csv, line 1: missing column(s) consented_at, consent_source; "
        "the header must name email, consented_at, consent_source, first_name, timezone"
    ]
