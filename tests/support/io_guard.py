"""Forbid I/O beyond memory while a unit test runs: sockets, file writes, file databases, subprocesses.

A unit test may read files (the repo's config.yaml, campaigns/, templates/, Python's own
modules) and use in-memory SQLite; everything else is integration. `forbid_io(test_id)`
replaces the entry points below with ones that raise `UnitTestIOError` naming the test
and what it tried. Code under test may catch the error (App.open turns an OSError into a
ConfigError, for one), so every attempt is also recorded in `violations`, and the
fixture that uses this fails the test afterwards when the list is not empty.

What is covered (and why each entry point):
- sockets: socket.socket.connect/connect_ex/bind/sendto, name lookups (getaddrinfo and
  friends), and psycopg.connect (libpq opens its socket in C, below the socket module);
  a socketpair (asyncio's wake-up pipe) stays allowed: it never leaves the process;
- file writes: open()/io.open()/os.open() for writing, appending, creating or
  truncating; os-level creation, renaming and removal (mkdir, rename, replace, unlink,
  rmdir, link, symlink, truncate); sqlite3.connect on anything but an in-memory
  database (SQLite writes its files in C, below open());
- subprocesses: subprocess.Popen (run, check_output, call go through it), os.system,
  os.posix_spawn(p), os.fork, os.forkpty and the os.exec* family.

Not covered: Python's own bytecode cache (importlib writes it through the posix module
directly, not through os), io.FileIO opened by name, and Hypothesis's example database,
which is test bookkeeping rather than the code under test (its folder is allowed).
"""

from __future__ import annotations

import builtins
import io
import os
import socket
import sqlite3
import sqlite3.dbapi2
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg

WRITE_MODE_LETTERS = frozenset("wax+")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_CHANGES = (
    "mkdir",
    "rename",
    "replace",
    "remove",
    "unlink",
    "rmdir",
    "link",
    "symlink",
    "truncate",
    "mkfifo",
    "mknod",
)
EXECS = ("execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe")

_ACTIVE: list[Guard] = []


def active() -> Guard | None:
    """The guard in force now, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


class UnitTestIOError(OSError):
    """A unit test tried I/O beyond memory. An OSError so callers handle it like the real failure."""


class Guard:
    """What one test may not do, and what it tried."""

    def __init__(self, test_id: str, allowed_dirs: tuple[Path, ...] = ()) -> None:
        self.test_id = test_id
        self.allowed_dirs = tuple(str(d.resolve()) + os.sep for d in allowed_dirs)
        self.violations: list[str] = []

    def trip(self, what: str) -> UnitTestIOError:
        message = (
            f"unit test {self.test_id} tried {what}: "
            "unit tests do no I/O beyond memory (move it to tests/integration)"
        )
        self.violations.append(message)
        return UnitTestIOError(message)

    def allowed(self, path: Any) -> bool:
        if isinstance(path, int):  # an already open descriptor: its opening was checked
            return True
        try:
            text = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return any(text.startswith(folder) or text + os.sep == folder for folder in self.allowed_dirs)

    @contextmanager
    def tripped(self) -> Iterator[list[str]]:
        """The block must trip the guard (the guard's own tests): what it tried is handed back
        instead of failing the test; AssertionError if it tried nothing."""
        before = len(self.violations)
        seen: list[str] = []
        yield seen
        seen.extend(self.violations[before:])
        del self.violations[before:]
        if not seen:
            raise AssertionError(f"{self.test_id}: the block did no I/O the guard refuses")


def _opens_for_writing(mode: str) -> bool:
    return bool(WRITE_MODE_LETTERS & set(mode))


def _sqlite_in_memory(database: Any, uri: bool) -> bool:
    name = os.fsdecode(database) if not isinstance(database, str) else database
    if name in ("", ":memory:"):
        return True
    return uri and (name.startswith("file::memory:") or (name.startswith("file:") and "mode=memory" in name))


@contextmanager
def forbid_io(test_id: str, *, allowed_dirs: tuple[Path, ...] = ()) -> Iterator[Guard]:
    """Within the block, I/O beyond memory raises UnitTestIOError and is recorded on the Guard."""
    guard = Guard(test_id, allowed_dirs)
    real_open = builtins.open
    real_os_open = os.open
    real_sqlite_connect = sqlite3.connect

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if _opens_for_writing(mode) and not guard.allowed(file):
            shown = file if isinstance(file, int) else os.fsdecode(file)
            raise guard.trip(f"to open {shown!r} for writing (mode {mode!r})")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & WRITE_FLAGS and not guard.allowed(path):
            raise guard.trip(f"os.open({os.fsdecode(path)!r}) with write or create flags")
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_sqlite_connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        if not _sqlite_in_memory(database, bool(kwargs.get("uri"))):
            raise guard.trip(
                f"to open the SQLite file database {os.fsdecode(database)!r} (use sqlite:// in memory)"
            )
        return real_sqlite_connect(database, *args, **kwargs)

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join(
                repr(a) for a in args if isinstance(a, (str, bytes, int, tuple, list, os.PathLike))
            )
            raise guard.trip(f"{what}({shown})")

        return refused

    def refuse_unless_allowed(what: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]  # both ends of a rename
            if all(guard.allowed(path) for path in paths):
                return real(*args, **kwargs)
            if what == "os.mkdir" and os.path.isdir(args[0]):
                return real(*args, **kwargs)  # raises FileExistsError: nothing is created
            raise guard.trip(f"{what}({', '.join(repr(os.fsdecode(p)) for p in paths)})")

        return checked

    patches: list[tuple[Any, str, Any]] = [
        (builtins, "open", guarded_open),
        (io, "open", guarded_open),
        (os, "open", guarded_os_open),
        (sqlite3, "connect", guarded_sqlite_connect),
        (sqlite3.dbapi2, "connect", guarded_sqlite_connect),  # the name SQLAlchemy calls
        (socket.socket, "connect", refuse("a socket connect")),
        (socket.socket, "connect_ex", refuse("a socket connect")),
        (socket.socket, "bind", refuse("a socket bind")),
        (socket.socket, "sendto", refuse("a socket sendto")),
        (socket, "create_connection", refuse("socket.create_connection")),
        (socket, "create_server", refuse("socket.create_server")),
        (socket, "getaddrinfo", refuse("a name lookup (socket.getaddrinfo)")),
        (socket, "gethostbyname", refuse("a name lookup (socket.gethostbyname)")),
        (socket, "gethostbyname_ex", refuse("a name lookup (socket.gethostbyname_ex)")),
        (subprocess.Popen, "__init__", refuse("a subprocess (subprocess.Popen)")),
        (os, "system", refuse("a subprocess (os.system)")),
        (os, "posix_spawn", refuse("a subprocess (os.posix_spawn)")),
        (os, "posix_spawnp", refuse("a subprocess (os.posix_spawnp)")),
        (os, "fork", refuse("a subprocess (os.fork)")),
        (os, "forkpty", refuse("a subprocess (os.forkpty)")),
        # psycopg.connect is bound to Connection.connect at import: both names are replaced.
        (psycopg, "connect", refuse("a PostgreSQL connection (psycopg)")),
        (psycopg.Connection, "connect", refuse("a PostgreSQL connection (psycopg)")),
    ]
    patches += [(os, name, refuse(f"a subprocess (os.{name})")) for name in EXECS]
    patches += [(os, name, refuse_unless_allowed(f"os.{name}", getattr(os, name))) for name in PATH_CHANGES]

    with ExitStack() as stack:
        for target, attribute, replacement in patches:
            stack.enter_context(mock.patch.object(target, attribute, replacement))
        _ACTIVE.append(guard)
        try:
            yield guard
        finally:
            _ACTIVE.remove(guard)
