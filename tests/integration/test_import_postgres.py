"""The two-pass import against a real PostgreSQL: chunks written with unnest() and RETURNING."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from nurture.app import App
from nurture.audience import importer
from tests.support.csv_files import write_csv_lf as write_csv
from tests.support.factories import at
from tests.support.import_checks import check_repeats_across_chunks

pytestmark = pytest.mark.postgres
NOW = at("2026-12-01 18:00")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # `app` checks it opened PostgreSQL


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_repeats_across_chunks_on_postgres(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
):
    monkeypatch.setattr(importer, "CHUNK", chunk)
    check_repeats_across_chunks(app, tmp_path)


def test_a_large_import_refreshes_the_planner_statistics(app: App, tmp_path: Path):
    """Right after an import the first pass plans its claims for the tables as they now are,
    not for the empty ones of before (which read and sorted every due row in each claim
    round: benchmarks/RESULTS.md)."""
    rows = [
        [f"reader{n}@example.com", "", "", "2025-01-01", "form A"] for n in range(importer.STATISTICS_AFTER)
    ]
    report = importer.import_csv(app, write_csv(tmp_path / "many.csv", rows), NOW)
    assert report.enrolled == importer.STATISTICS_AFTER
    with app.engine.connect() as connection:
        analyzed = connection.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND relname IN ('subscribers', 'enrollments', 'consent_events')"
            )
        ).scalars()
        assert sorted(analyzed) == ["consent_events", "enrollments", "subscribers"]
