"""The unit tests' I/O guard on small suites run through pytester, with the suite's own
conftest hooks: an attempt the code under test catches still fails the test, a fixture of
a broader scope is guarded too, the message names the test and what it tried, and a test
without the unit marker is left alone. (The guard's refusals one by one: the unit guard tests.)"""

from __future__ import annotations

import pytest

from tests.support.factories import memory_config

CONFTEST = """
from tests.conftest import (  # the suite's own marker registration, guard fixture and hooks
    _unit_tests_do_no_io,
    pytest_configure,
    pytest_fixture_setup,
    pytest_runtest_setup,
)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_a_write_the_code_catches_still_fails_the_unit_test(suite: pytest.Pytester) -> None:
    target = suite.path / "written.txt"
    suite.makepyfile(
        test_caught=f"""
        import pytest

        pytestmark = pytest.mark.unit

        def test_swallows_the_refusal():
            try:
                open({str(target)!r}, "w")
            except OSError:
                pass  # as App.open turns the OSError of a folder it cannot create into a ConfigError
        """
    )
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unit test test_caught.py::test_swallows_the_refusal "
            f"tried to open '{target}' for writing (mode 'w')*"
        ]
    )
    assert not target.exists()


def test_a_socket_fails_the_unit_test_and_names_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_socket="""
        import socket

        import pytest

        pytestmark = pytest.mark.unit

        def test_calls_out():
            socket.create_connection(("127.0.0.1", 9), timeout=1)
        """
    )
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*UnitTestIOError: unit test test_socket.py::test_calls_out tried socket.create_connection(*"]
    )


def test_a_module_fixture_first_set_up_for_a_unit_test_is_guarded(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_module_fixture="""
        import pytest

        pytestmark = pytest.mark.unit

        @pytest.fixture(scope="module")
        def folder(tmp_path_factory):
            return tmp_path_factory.mktemp("data")

        def test_uses_a_folder(folder):
            pass
        """
    )
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*unit test test_module_fixture.py::test_uses_a_folder "
            "(its module-scoped fixture folder) tried os.mkdir(*"
        ]
    )


def test_without_the_unit_marker_the_same_write_passes(suite: pytest.Pytester) -> None:
    target = suite.path / "written.txt"
    suite.makepyfile(
        test_integration=f"""
        def test_writes():
            with open({str(target)!r}, "w") as handle:
                handle.write("allowed")
        """
    )
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert target.read_text() == "allowed"


def test_memory_config_refuses_to_run_outside_the_guard() -> None:
    with pytest.raises(RuntimeError, match="only there does the I/O guard stop writes to the repo"):
        memory_config()
