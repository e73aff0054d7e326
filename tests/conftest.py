from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support import browser as _browser
from tests.support import postgres as _pg


# Property-based tests (hypothesis): in CI the same bounded set of examples every run
# (derandomize: the seed comes from each test's name), so a red CI is reproducible and
# its time is bounded; on a developer machine, fresh random examples each run.
# HYPOTHESIS_PROFILE=thorough runs many more (benchmarks/fuzz.py is the longer campaign).
settings.register_profile("ci", derandomize=True, max_examples=50, deadline=None, database=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs a real PostgreSQL (postgres_url fixture)")
    config.addinivalue_line("markers", "browser: needs headless Chromium via Playwright (page fixture)")


def _unavailable(what: str, reason: str, hint: str) -> None:
    """No infrastructure: an error in CI, a skip on a developer machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason} -- to run these tests: {hint}")


# -- PostgreSQL ----------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server():
    try:
        server, reason = _pg.PostgresServer.start(), ""
    except _pg.PostgresUnavailable as exc:
        server, reason = None, str(exc)
    if server is None:  # outside the except: no chained traceback in the report
        _unavailable("PostgreSQL", reason, _pg.HINT)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, request) -> str:
    """SQLAlchemy URL of a fresh, empty database (dropped afterwards)."""
    name = _pg.database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


# -- Browser -------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    try:
        session, reason = _browser.BrowserSession(), ""
    except _browser.BrowserUnavailable as exc:
        session, reason = None, str(exc)
    if session is None:
        _unavailable("Chromium/Playwright", reason, _browser.HINT)
    yield session.browser
    session.close()


@pytest.fixture(autouse=True)
def _hide_playwright_loop(request):
    """Keep the session browser's event loop from breaking asyncio in other tests."""
    if "browser" in request.fixturenames:
        yield
    else:
        with _browser.playwright_loop_hidden():
            yield


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=_browser.DEFAULT_VIEWPORT)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts_dir(request) -> Path:
    """test-artifacts/<test name>/ under the repo root, emptied, for screenshots etc."""
    return _browser.artifacts_path(Path(request.config.rootpath), request.node.name)


# -- Apps opened through tests.support.factories ---------------------------------

@pytest.fixture(autouse=True)
def _close_test_apps():
    from tests.support.factories import close_opened

    yield
    close_opened()
