"""CSV import in two passes: bounded problem lists, chunk boundaries, the fast address check,
and the hostile inputs the hardening issue found (year-1 dates, named pipes, a held lock)."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nurture.addresses import normalize_email
from nurture.app import App
from nurture.audience import importer
from nurture.audience.importer import MAX_PROBLEMS, clean_email, import_csv
from nurture.audience.signup import confirm, subscribe
from nurture.errors import InputError, NurtureError
from nurture.store import db
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.csv_files import write_csv_lf as write_csv
from tests.support.factories import active_subscribers, at, make_app, write_project
from tests.support.import_checks import check_repeats_across_chunks
from tests.support.processes import run_nurture

NOW = at("2026-12-01 18:00")


def subscriber_count(app: App) -> int:
    with transaction(app.engine) as session:
        return session.scalar(select(func.count()).select_from(m.Subscriber)) or 0


# ---------------------------------------------------------------- dates, pipes, locks


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00+05:00 is before 2000"),
        ("0001-01-01", "0001-01-01 is before 2000"),
        ("1999-12-31T23:59:59Z", "1999-12-31T23:59:59Z is before 2000"),
        ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59-05:00 is in the future"),
    ],
)
def test_consent_dates_out_of_range_are_row_errors(app: App, tmp_path: Path, value: str, message: str):
    path = write_csv(
        tmp_path / "dates.csv",
        [["ok@example.com", "", "", "2025-01-01", "form"], ["old@example.com", "", "", value, "form"]],
    )
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    assert f"{path}, line 3: consented_at: {message}" in str(caught.value)
    assert subscriber_count(app) == 0


def test_consent_date_in_2000_is_accepted(app: App, tmp_path: Path):
    path = write_csv(tmp_path / "y2k.csv", [["y2k@example.com", "", "", "2000-01-01T00:00:00Z", "form"]])
    assert import_csv(app, path, NOW).created == 1


def test_cli_year_one_date_gives_a_row_error_not_a_traceback(tmp_path: Path):
    write_project(tmp_path)
    write_csv(tmp_path / "old.csv", [["old@example.com", "Old", "", "0001-01-01T00:00:00+05:00", "form"]])
    result = run_nurture(tmp_path, "import", "old.csv", "--skip-invalid", "--now", "2026-12-01T18:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Overflow" not in result.stderr
    assert (
        result.stderr.strip()
        == "skipped old.csv, line 2: consented_at: 0001-01-01T00:00:00+05:00 is before 2000; "
        "give the date this person actually consented"
    )
    assert result.stdout.startswith("1 row: 0 added")


def test_named_pipe_is_refused_without_waiting(app: App, tmp_path: Path):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as caught:
        import_csv(app, fifo, NOW)  # opening it would block forever: nobody writes to it
    assert (
        str(caught.value)
        == f"{fifo}: not a regular file (a pipe, socket or device); give the path of a CSV file saved on disk"
    )
    with pytest.raises(InputError, match="a folder; give the path of a CSV file"):
        import_csv(app, tmp_path, NOW)


def test_cli_named_pipe_is_refused_at_once(tmp_path: Path):
    write_project(tmp_path)
    os.mkfifo(tmp_path / "fifo.csv")
    result = run_nurture(tmp_path, "import", "fifo.csv", timeout=30)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: fifo.csv: not a regular file (a pipe, socket or device); "
        "give the path of a CSV file saved on disk"
    ]


def test_held_write_lock_says_so_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Wait 4 x 0.3 s instead of 4 x 30 for the lock, so the test is quick; the path is the same.
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
    app = make_app(tmp_path)
    try:
        active_subscribers(app, 3, NOW, prefix="seed")
        path = write_csv(
            tmp_path / "people.csv", [[f"p{i}@example.com", "", "", "2025-01-01", "form"] for i in range(50)]
        )
        other = sqlite3.connect(tmp_path / "nurture.db", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process's import, mid-write
            with pytest.raises(NurtureError) as caught:
                import_csv(app, path, NOW)
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert str(caught.value) == (
            f"{path}: nothing was imported: another process (an import or a sending pass) held the store "
            "for more than 1.2 s. Run the import again once it has finished."
        )
        assert "database.url" not in str(caught.value)
        assert subscriber_count(app) == 3
        assert import_csv(app, path, NOW).created == 50  # once the lock is free, it goes through
    finally:
        app.close()


def test_lock_released_while_waiting_lets_the_import_through(tmp_path: Path):
    app = make_app(tmp_path)
    try:
        path = write_csv(
            tmp_path / "people.csv", [[f"p{i}@example.com", "", "", "2025-01-01", "form"] for i in range(20)]
        )
        other = sqlite3.connect(tmp_path / "nurture.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
        release.start()
        try:
            assert import_csv(app, path, NOW).created == 20
        finally:
            release.join()
            other.close()
    finally:
        app.close()


# ---------------------------------------------------------------- bounded problems, chunk boundaries


def test_problems_beyond_the_limit_are_counted_not_kept(app: App, tmp_path: Path):
    bad = MAX_PROBLEMS + 500
    rows = [[f"bad{i}", "", "", "2025-01-01", "form"] for i in range(bad)] + [
        ["good@example.com", "", "", "2025-01-01", "form"]
    ]
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(InputError) as caught:
        import_csv(app, path, NOW)
    message = str(caught.value)
    assert message.startswith(f"{bad} problem(s) in {bad + 1} rows; nothing was imported:")
    assert f"\n  ... and {bad - 50} more\n" in message
    assert len(message.splitlines()) == 1 + 50 + 1 + 1

    report = import_csv(app, path, NOW, skip_invalid=True)
    assert (report.rows, report.created, report.invalid_count, len(report.invalid)) == (
        bad + 1,
        1,
        bad,
        MAX_PROBLEMS,
    )
    assert [problem.line for problem in report.invalid] == list(range(2, MAX_PROBLEMS + 2))


def test_cli_lists_the_kept_problems_and_counts_the_rest(tmp_path: Path):
    write_project(tmp_path)
    bad = MAX_PROBLEMS + 7
    write_csv(tmp_path / "bad.csv", [[f"bad{i}", "", "", "2025-01-01", "form"] for i in range(bad)])
    result = run_nurture(tmp_path, "import", "bad.csv", "--skip-invalid", "--now", "2026-12-01T18:00:00Z")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == MAX_PROBLEMS + 1
    assert lines[-1] == "skipped bad.csv: 7 more problem(s) not listed"
    assert f"{bad} invalid" in result.stdout


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_duplicates_merge_the_same_across_chunk_boundaries(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
):
    monkeypatch.setattr(importer, "CHUNK", chunk)
    check_repeats_across_chunks(app, tmp_path)


def test_reimport_in_small_chunks_fills_blanks_of_existing_people(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(importer, "CHUNK", 2)
    kim = subscribe(app, "kim@example.com", NOW - timedelta(days=2)).subscriber_id
    with transaction(app.engine) as session:
        nonce = session.get(m.Subscriber, kim).confirm_nonce
    from nurture import links

    confirm(app, links.confirm_url(app.config, kim, nonce, NOW).rsplit("/", 1)[1], NOW - timedelta(days=1))
    path = write_csv(
        tmp_path / "kim.csv",
        [
            ["x@example.com", "", "", "2025-01-01", "f"],
            ["a@example.com", "", "", "2025-01-01", "f"],
            ["kim@example.com", "", "Europe/Paris", "2025-01-01", "f"],
            ["KIM@example.com", "Kim", "America/Denver", "2025-01-01", "f"],
        ],
    )
    report = import_csv(app, path, NOW)
    assert (report.created, report.merged, report.activated) == (2, 2, 0)
    with transaction(app.engine) as session:
        person = session.get(m.Subscriber, kim)
        assert (person.first_name, person.timezone) == ("Kim", "Europe/Paris")


# ---------------------------------------------------------------- the fast address check


TRICKY = [
    "plain@example.com",
    "Mixed.Case@EXAMPLE.COM",
    "  spaced@example.com  ",
    "a.b.c+tag@sub.example.co.uk",
    "o'neil@example.ie",
    "x@example",
    "x@localhost",
    "x@test",
    "x@foo.invalid",
    "x@example..com",
    "x@-example.com",
    ".lead@example.com",
    "trail.@example.com",
    "dou..ble@example.com",
    "no-at-sign",
    "@example.com",
    "x@",
    "x@@example.com",
    "Postmaster@Example.com",
    "ABUSE@example.com",
    '"quoted"@example.com',
    "Name <x@example.com>",
    "x@[127.0.0.1]",
    "ü@example.com",
    "x@bücher.de",
    "x@xn--bcher-kva.de",
    "x@BÜCHER.DE",
    "x@exam ple.com",
    "x@example.com.",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "a" * 60 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + ".com",
    "x@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 58 + ".com",
    "x@" + "b" * 64 + ".com",
    "x@example.com\n",
    "x\u200b@example.com",
    "x@exa\u200bmple.com",
    "x@123.com",
    "x@1.2.3.4",
    "{}|~!#$%&*=?^`@example.org",
]


def random_addresses(count: int, seed: int) -> list[str]:
    """Addresses built from pieces that are often valid and sometimes subtly not."""
    chooser = random.Random(seed)
    local_pieces = [
        "a",
        "Zed",
        "0",
        ".",
        "..",
        "-",
        "+",
        "_",
        "'",
        "~",
        "ü",
        "é",
        "\u0301",
        " ",
        '"',
        "POSTMASTER",
        "x" * 40,
    ]
    label_pieces = [
        "example",
        "EXAMPLE",
        "b\u00fccher",
        "xn--bcher-kva",
        "-",
        "1",
        "ß",
        "co",
        "\u200b",
        "y" * 30,
        "_",
        "localhost",
    ]

    def local() -> str:
        return "".join(chooser.choice(local_pieces) for _ in range(chooser.randint(1, 4)))

    def domain() -> str:
        labels = [
            "".join(chooser.choice(label_pieces) for _ in range(chooser.randint(1, 2)))
            for _ in range(chooser.randint(1, 4))
        ]
        return ".".join(labels + [chooser.choice(["com", "org", "de", "test", "invalid", ""])])

    return [f"{local()}{chooser.choice(['@', '@', '@', '@@', ''])}{domain()}" for _ in range(count)]


def test_fast_address_check_answers_as_normalize_email_does():
    inputs = TRICKY + random_addresses(20_000, seed=15)
    valid = mismatches = 0
    for raw in inputs:
        try:
            expected: tuple[str, str] | str = normalize_email(raw)
            valid += 1
        except InputError as exc:
            expected = str(exc)
        try:
            got: tuple[str, str] | str = clean_email(raw)
        except InputError as exc:
            got = str(exc)
        if got != expected:
            mismatches += 1
            assert got == expected, raw
    # Enough of both kinds that the fast path and the fallback are both exercised.
    assert 500 < valid < len(inputs) - 500, valid
    assert importer._clean_domain.cache_info().hits > 500
    assert mismatches == 0
