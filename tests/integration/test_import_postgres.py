"""The two-pass import against a real PostgreSQL: chunks written with unnest() and RETURNING."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.app import App
from nurture.audience import importer
from tests.support.import_checks import check_repeats_across_chunks

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # `app` checks it opened PostgreSQL


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_repeats_across_chunks_on_postgres(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
):
    monkeypatch.setattr(importer, "CHUNK", chunk)
    check_repeats_across_chunks(app, tmp_path)
