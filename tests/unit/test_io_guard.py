"""The unit tests' I/O guard trips: every way out of memory a unit test could take is refused,
with a message naming the test and what it tried, before anything is written or sent.

(That an attempt the code under test catches still fails the test, and that the guard
covers only the unit marker, is shown on small suites in the integration guard tests.)
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text

from nurture.store.db import make_engine
from tests.support import io_guard
from tests.support.factories import REPO

# A name in the system's temporary folder that no test creates: the guard must stop the
# attempt before the file exists.
NOWHERE = Path(tempfile.gettempdir()) / f"nurture-io-guard-{uuid.uuid4().hex}"


PORT = 9  # discard: nothing listens on it here, and the guard refuses before any packet


def raw_connect() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("127.0.0.1", PORT))


def raw_bind() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))


def datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("127.0.0.1", PORT))


def opened(path: Path, mode: str) -> Callable[[], None]:
    def attempt() -> None:
        with open(path, mode):
            pass  # nothing is written even if the guard lets the open through

    return attempt


ATTEMPTS: dict[str, tuple[Callable[[], object], str]] = {
    "open for writing": (opened(NOWHERE, "w"), "for writing (mode 'w')"),
    "open for appending": (opened(NOWHERE, "a"), "for writing (mode 'a')"),
    "open for update": (opened(REPO / "config.yaml", "r+"), "for writing (mode 'r+')"),
    "Path.write_text": (lambda: NOWHERE.write_text("x"), "for writing"),
    "os.open with O_CREAT": (
        lambda: os.open(NOWHERE, os.O_CREAT | os.O_WRONLY),
        "with write or create flags",
    ),
    "Path.touch": (lambda: NOWHERE.touch(), "with write or create flags"),
    "tempfile.mkstemp": (lambda: tempfile.mkstemp(), "with write or create flags"),
    "os.mkdir": (lambda: NOWHERE.mkdir(), "os.mkdir("),
    "shutil.copy": (lambda: shutil.copy(REPO / "config.yaml", NOWHERE), "for writing"),
    "os.rename": (lambda: os.rename(NOWHERE, NOWHERE.with_suffix(".old")), "os.rename("),
    "os.remove": (lambda: os.remove(NOWHERE), "os.remove("),
    "a SQLite file": (lambda: sqlite3.connect(NOWHERE), "the SQLite file database"),
    "a SQLite file through SQLAlchemy": (
        lambda: make_engine(f"sqlite:///{NOWHERE}").connect(),
        "the SQLite file database",
    ),
    "a socket connect": (
        lambda: socket.create_connection(("127.0.0.1", PORT), timeout=1),
        "socket.create_connection",
    ),
    "a raw socket connect": (raw_connect, "a socket connect"),
    "a socket bind": (raw_bind, "a socket bind"),
    "a UDP datagram": (datagram, "a socket sendto"),
    "a name lookup": (lambda: socket.getaddrinfo("example.com", 443), "a name lookup"),
    "an HTTP request": (
        lambda: httpx.get(f"http://127.0.0.1:{PORT}/", timeout=1),
        "socket.create_connection",
    ),
    "a PostgreSQL connection": (
        lambda: psycopg.connect("postgresql://nobody@127.0.0.1:1/none"),
        "a PostgreSQL connection",
    ),
    "subprocess.run": (lambda: subprocess.run(["true"], check=False), "a subprocess (subprocess.Popen)"),
    "os.system": (lambda: os.system("true"), "a subprocess (os.system)"),
    "os.posix_spawn": (lambda: os.posix_spawn("/bin/true", ["true"], {}), "a subprocess (os.posix_spawn)"),
}


def test_this_unit_test_runs_under_the_guard(request: pytest.FixtureRequest) -> None:
    guard = io_guard.active()
    assert request.node.get_closest_marker("unit") is not None  # given by the folder
    assert guard is not None and guard.test_id == request.node.nodeid


def test_every_test_in_tests_unit_carries_the_unit_marker(request: pytest.FixtureRequest) -> None:
    unit = REPO / "tests" / "unit"
    collected = [item for item in request.session.items if unit in item.path.parents]
    assert request.node in collected
    assert [item.nodeid for item in collected if item.get_closest_marker("unit") is None] == []


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_the_guard_refuses_naming_the_test_and_what_it_tried(
    request: pytest.FixtureRequest, attempt: str
) -> None:
    guard = io_guard.active()
    assert guard is not None
    action, what = ATTEMPTS[attempt]
    # Exception: a caller may wrap the guard's OSError (httpx in a ConnectError, for one).
    with guard.tripped() as seen, pytest.raises(Exception) as caught:  # noqa: B017 - see above
        action()
    assert seen, f"{attempt} was not refused"
    assert all(message.startswith(f"unit test {request.node.nodeid} tried ") for message in seen)
    assert what in seen[0]
    assert "unit tests do no I/O beyond memory" in seen[0]
    assert isinstance(caught.value, io_guard.UnitTestIOError) or "unit test" in str(caught.value)
    assert not NOWHERE.exists() and not NOWHERE.with_suffix(".old").exists()


def test_a_refusal_the_code_catches_is_still_recorded() -> None:
    guard = io_guard.active()
    assert guard is not None
    with guard.tripped() as seen, suppress(OSError):  # as App.open turns an OSError into a ConfigError
        opened(NOWHERE, "w")()
    assert len(seen) == 1 and "for writing" in seen[0]


def test_memory_reading_and_the_repo_s_files_stay_allowed() -> None:
    guard = io_guard.active()
    assert guard is not None
    with sqlite3.connect(":memory:") as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 2")).scalar() == 2
    engine.dispose()
    assert "practice:" in (REPO / "config.yaml").read_text(encoding="utf-8")
    with open(REPO / "config.yaml", "rb") as handle:
        assert handle.read(1)
    left, right = socket.socketpair()  # asyncio's wake-up pipe: never leaves the process
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
    assert guard.violations == []
