"""The two-pass import against a real PostgreSQL: chunks written with unnest() and RETURNING."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture.app import App
from nurture.audience import importer
from tests.support.factories import make_app
from tests.support.import_checks import check_repeats_across_chunks

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(tmp_path: Path, postgres_url: str) -> Iterator[App]:
    app = make_app(tmp_path, database_url=postgres_url)
    assert app.engine.dialect.name == "postgresql"
    yield app
    app.close()


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_repeats_across_chunks_on_postgres(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int):
    monkeypatch.setattr(importer, "CHUNK", chunk)
    check_repeats_across_chunks(app, tmp_path)
