from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import storage_directory as hypothesis_storage

from tests.support import browser as _browser
from tests.support import io_guard as _io_guard
from tests.support import pgbouncer as _pgbouncer
from tests.support import postgres as _pg

# Property-based tests (hypothesis): in CI the same bounded set of examples every run
# (derandomize: the seed comes from each test's name), so a red CI is reproducible and
# its time is bounded; on a developer machine, fresh random examples each run.
# HYPOTHESIS_PROFILE=thorough runs many more (benchmarks/fuzz.py is the longer campaign).
settings.register_profile(
    "ci", derandomize=True, max_examples=50, deadline=None, database=None, print_blob=True
)
settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


# -- Kinds of test ---------------------------------------------------------------
# Each kind has its folder, and the folder gives the marker (`pytest -m unit`):
#   unit         no I/O beyond memory: no file written, no SQLite file, no socket, no
#                subprocess (reading the repo's files is fine); the guard below enforces it
#   integration  SQLite files and PostgreSQL, HTTP servers, files, subprocesses
#   browser      headless Chromium through Playwright
KINDS = ("unit", "integration", "browser")
TESTS = Path(__file__).resolve().parent

pytest_plugins = ["pytester"]  # the I/O guard's own tests run small suites through it


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "unit: no I/O beyond memory, enforced by the I/O guard; every test in tests/unit"
    )
    config.addinivalue_line(
        "markers", "integration: files, databases, HTTP, subprocesses; every test in tests/integration"
    )
    config.addinivalue_line(
        "markers", "browser: headless Chromium via Playwright (page fixture); every test in tests/browser"
    )
    config.addinivalue_line("markers", "postgres: needs a real PostgreSQL (postgres_url fixture)")


def kind_of(path: Path) -> str | None:
    """The kind a test file's folder gives it: tests/<kind>/..."""
    try:
        top = path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return None
    return top if top in KINDS else None


def pytest_itemcollected(item: pytest.Item) -> None:
    kind = kind_of(item.path)
    if kind is not None:
        item.add_marker(kind)


# -- The unit tests' I/O guard (tests/support/io_guard.py) -----------------------


def _guard(test_id: str) -> AbstractContextManager[_io_guard.Guard]:
    return _io_guard.forbid_io(
        test_id, allowed_dirs=(hypothesis_storage(intent_to_write=False).home_directory,)
    )


def _fail_on(guard: _io_guard.Guard) -> None:
    if guard.violations:  # also those the code under test caught and carried on from
        pytest.fail("\n".join(dict.fromkeys(guard.violations)), pytrace=False)


@pytest.fixture(autouse=True)
def _unit_tests_do_no_io(request: pytest.FixtureRequest) -> Iterator[_io_guard.Guard | None]:
    """Under the unit marker, sockets, file writes, file databases and subprocesses raise,
    in the test and in its function-scoped fixtures (set up after this one, torn down
    before it); any attempt fails the test, even one the code under test caught."""
    if request.node.get_closest_marker("unit") is None:
        yield None
        return
    with _guard(request.node.nodeid) as guard:
        yield guard
    _fail_on(guard)


_SETTING_UP: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _SETTING_UP.append(item)
    try:
        return (yield)
    finally:
        _SETTING_UP.pop()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Iterator[object]:
    """A module- or session-scoped fixture is set up before the autouse guard: when a unit
    test is the first to need one, its setup runs under the guard too."""
    item = _SETTING_UP[-1] if _SETTING_UP else None
    if fixturedef.scope == "function" or item is None or item.get_closest_marker("unit") is None:
        return (yield)
    with _guard(f"{item.nodeid} (its {fixturedef.scope}-scoped fixture {fixturedef.argname})") as guard:
        result = yield
    _fail_on(guard)
    return result


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


@pytest.fixture
def pgbouncer_url(postgres_server, postgres_url) -> Iterator[str]:
    """`postgres_url`'s database through a PgBouncer in transaction pooling mode."""
    run_as = postgres_server.run_as or (_pg.TEST_USER if os.geteuid() == 0 else None)
    try:
        served = _pgbouncer.pgbouncer_in_front_of(postgres_url, run_as=run_as)
        url = served.__enter__()
    except _pgbouncer.PgBouncerUnavailable as exc:
        _unavailable("PgBouncer", str(exc), _pgbouncer.HINT)
    try:
        yield url
    finally:
        served.__exit__(None, None, None)


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
