"""A real PostgreSQL for tests.

Either an existing server named by ``NURTURE_TEST_POSTGRES_URL`` (a SQLAlchemy
URL such as ``postgresql+psycopg://user@host:5432/db``), or a throwaway cluster
started from the local ``initdb``/``pg_ctl`` binaries in a temporary directory.

initdb and postgres refuse to run as root; when the tests run as root the
cluster is owned by, and run as, an unprivileged system user (``nurturetest``).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

ENV_URL = "NURTURE_TEST_POSTGRES_URL"
TEST_USER = "nurturetest"
SUPERUSER = "postgres"
HINT = f"install postgresql (apt-get install postgresql) or set {ENV_URL}"

# Durability is worthless for a throwaway cluster; these make it start and
# run faster and keep its footprint small.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "autovacuum": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
    # segments in the data dir, so an immediate stop + rmtree leaves nothing in /dev/shm
    "dynamic_shared_memory_type": "mmap",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be had in this environment; the message says why."""


def _version_key(path: str) -> tuple:
    # /usr/lib/postgresql/<ver>/bin -> numeric sort on <ver>
    ver = Path(path).parent.name
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.\-]", ver))


def find_pg_bindir() -> Path | None:
    """Directory holding both initdb and pg_ctl: PATH first, then the highest
    /usr/lib/postgresql/<ver>/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(os.path.realpath(initdb)).parent
        if (bindir / "pg_ctl").exists():
            return bindir
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl and Path(pg_ctl).parent == Path(initdb).parent:
            return Path(initdb).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return Path(d)
    return None


def postgres_available() -> tuple[bool, str]:
    """Whether a PostgreSQL can (probably) be had, and if not, why not.

    This does not start anything; starting can still fail (see
    ``PostgresServer.start``)."""
    if os.environ.get(ENV_URL):
        return True, ""
    try:
        import psycopg  # noqa: F401 - imported only to learn whether it is installed
    except ImportError:
        return False, "python package psycopg is not installed (pip install 'psycopg[binary]')"
    if find_pg_bindir() is None:
        return False, f"initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin; {HINT}"
    if os.geteuid() == 0:
        if not _which_sbin("runuser"):
            return False, "running as root but runuser(1) is missing (needed to run postgres unprivileged)"
        if not _user_exists(TEST_USER) and not _which_sbin("useradd"):
            return False, f"running as root, user {TEST_USER!r} missing and useradd(8) not found"
    return True, ""


def _which_sbin(name: str) -> str | None:
    """shutil.which, also looking in the sbin dirs a non-login root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _ensure_test_user() -> pwd.struct_passwd:
    if not _user_exists(TEST_USER):
        proc = subprocess.run(
            [
                _which_sbin("useradd") or "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                TEST_USER,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        # A concurrent run (e.g. another xdist worker) may have won the race.
        if proc.returncode != 0 and not _user_exists(TEST_USER):
            raise PostgresUnavailable(f"useradd {TEST_USER} failed: {proc.stderr.strip()}")
    return pwd.getpwnam(TEST_USER)


def _fast_tmp_base() -> str:
    """/dev/shm when it is roomy (creating a database there is ~10x faster than
    on a slow disk), else the usual temp dir. Docker's default 64MB shm is too
    small for a cluster (~40MB + ~8MB per database)."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 1 << 30 and os.access("/dev/shm", os.W_OK | os.X_OK):
            return "/dev/shm"
    except OSError:
        pass
    return tempfile.gettempdir()


def _world_traversable(path: str) -> bool:
    """Whether every directory from / down to path is searchable by others."""
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [p, *p.parents])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... (what psycopg.connect takes)."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(sqlalchemy_url: str, dbname: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(database=dbname).render_as_string(hide_password=False)


def database_name(hint: str = "") -> str:
    """A fresh, valid, lower-case database name (<= 63 bytes), e.g. from a test name."""
    stem = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40]
    return f"t_{stem}_{uuid.uuid4().hex[:10]}" if stem else f"t_{uuid.uuid4().hex[:16]}"


class PostgresServer:
    """A PostgreSQL to create test databases in.

    ``PostgresServer.start()`` picks ``NURTURE_TEST_POSTGRES_URL`` when set,
    otherwise starts a throwaway cluster; ``stop()`` tears the cluster down
    (a no-op for an external server). Also usable as a context manager.
    """

    def __init__(
        self,
        url: str,
        *,
        tmpdir: Path | None = None,
        bindir: Path | None = None,
        run_as: str | None = None,
        startup_seconds: float = 0.0,
    ):
        self.url = url
        self.tmpdir = tmpdir
        self.bindir = bindir
        self.run_as = run_as
        self.startup_seconds = startup_seconds
        self._stopped = False
        self._owner_pid = os.getpid()  # a forked child must not stop our cluster

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def start(cls, settings: dict[str, str] | None = None) -> PostgresServer:
        """`settings` override the throwaway cluster's (an external server is left as it is)."""
        external = os.environ.get(ENV_URL)
        if external:
            server = cls(external)
            server._check_connect()
            return server
        ok, reason = postgres_available()
        if not ok:
            raise PostgresUnavailable(reason)
        return cls._start_cluster(settings or {})

    @property
    def is_throwaway(self) -> bool:
        return self.tmpdir is not None

    @classmethod
    def _start_cluster(cls, overrides: dict[str, str]) -> PostgresServer:
        t0 = time.monotonic()
        bindir = find_pg_bindir()
        assert bindir is not None
        run_as = None
        base = _fast_tmp_base()
        if os.geteuid() == 0:
            user = _ensure_test_user()
            run_as = user.pw_name
            # The unprivileged user must be able to reach the directory; a
            # root-private TMPDIR would not do, /tmp (sticky, world-x) does.
            if not _world_traversable(base):
                base = "/tmp"
        tmpdir = Path(tempfile.mkdtemp(prefix="nurture-pg-", dir=base))
        server = cls("", tmpdir=tmpdir, bindir=bindir, run_as=run_as)
        # Safety net for callers that never reach stop() (stop is idempotent).
        atexit.register(server.stop)
        try:
            if run_as:
                os.chown(tmpdir, user.pw_uid, user.pw_gid)
            sockdir = tmpdir / "sock"
            datadir = tmpdir / "data"
            server._run(["mkdir", "-m", "700", str(sockdir)])
            server._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-A",
                    "trust",
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
            last_error = ""
            for _attempt in range(3):  # the free port can be taken in between
                port = _free_port()
                settings = dict(
                    _SETTINGS, **overrides, port=str(port), unix_socket_directories=f"'{sockdir}'"
                )
                with open(datadir / "postgresql.auto.conf", "w") as f:
                    f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
                proc = server._run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(datadir),
                        "-l",
                        str(tmpdir / "postgres.log"),
                        "-w",
                        "-t",
                        "60",
                        "-s",
                        "start",
                    ],
                    check=False,
                )
                if proc.returncode == 0:
                    server.url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
                    server.startup_seconds = time.monotonic() - t0
                    return server
                last_error = proc.stdout + proc.stderr + server.log_tail()
            raise PostgresUnavailable(f"pg_ctl start failed:\n{last_error}")
        except BaseException:
            server.stop()
            raise

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.run_as:
            argv = [_which_sbin("runuser") or "runuser", "-u", self.run_as, "--", *argv]
        # cwd: postgres complains if it cannot access the current directory.
        # stdin/stdout are never inherited by the postmaster (pg_ctl -l redirects),
        # so capturing output does not hang.
        proc = subprocess.run(
            argv, cwd=self.tmpdir, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self._env()
        )
        if check and proc.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    @staticmethod
    def _env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        return env

    def log_tail(self, lines: int = 30) -> str:
        if not self.tmpdir:
            return ""
        try:
            text = (self.tmpdir / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._stopped or self.tmpdir is None or os.getpid() != self._owner_pid:
            self._stopped = True
            return
        self._stopped = True
        datadir = self.tmpdir / "data"
        if (datadir / "postmaster.pid").exists():
            self._run(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(datadir),
                    "-s",
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                check=False,
            )
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------

    def _connect(self):
        import psycopg

        return psycopg.connect(_libpq_url(self.url), autocommit=True, connect_timeout=10)

    def _check_connect(self) -> None:
        try:
            with self._connect() as conn:
                conn.execute("select 1")
        except Exception as exc:  # noqa: BLE001 - report whatever it is
            raise PostgresUnavailable(f"cannot connect to {ENV_URL}: {exc}") from exc

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its SQLAlchemy URL."""
        from psycopg import sql

        name = name or database_name()
        stmt = "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'"
        with self._connect() as conn:
            # FILE_COPY (PG15+) copies the (tiny) template's files instead of
            # WAL-logging every page: ~2x faster here. It checkpoints, which is
            # free with fsync=off but not on a shared server, so only on our own.
            if self.is_throwaway and conn.info.server_version >= 150000:
                stmt += " STRATEGY FILE_COPY"
            conn.execute(sql.SQL(stmt).format(sql.Identifier(name)))
        return _with_database(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop a database, kicking out connections a test may have leaked."""
        from psycopg import sql

        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
