"""Self-tests for the test infrastructure: a real PostgreSQL and a real Chromium."""

from __future__ import annotations

import pytest


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            version = conn.execute(text("SHOW server_version")).scalar_one()
            assert version and version[0].isdigit()
            assert (
                conn.execute(text("select current_database()")).scalar_one() == postgres_url.rsplit("/", 1)[1]
            )
            tables = conn.execute(
                text("select count(*) from information_schema.tables where table_schema = 'public'")
            ).scalar_one()
            assert tables == 0
    finally:
        engine.dispose()


@pytest.mark.browser
def test_page_screenshot_at_mobile_width(page, artifacts_dir):
    page.goto(
        "data:text/html;charset=utf-8,"
        "<!doctype html><meta name=viewport content='width=device-width'>"
        "<h1 style='font-family:sans-serif'>Hello from nurture</h1>"
        "<p style='width:100%25'>A paragraph that should wrap at a narrow width.</p>"
    )
    page.set_viewport_size({"width": 375, "height": 667})
    assert page.evaluate("window.innerWidth") == 375
    assert page.inner_text("h1") == "Hello from nurture"

    shot = artifacts_dir / "mobile-375.png"
    page.screenshot(path=str(shot), full_page=True)

    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000
