"""A real PgBouncer in transaction pooling mode in front of the test PostgreSQL.

In transaction mode a client's transactions may each run on a different server
connection, so anything kept in a session (a prepared statement, a session advisory
lock, a SET, a temporary table) breaks. Tests run nurture through it to prove it keeps
none. Started from Debian's `pgbouncer` (installed by .ci/run); as root it runs as the
same unprivileged user as the throwaway cluster, since PgBouncer refuses root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

HINT = "install pgbouncer (apt-get install pgbouncer)"


class PgBouncerUnavailable(RuntimeError):
    """No pgbouncer binary here; the message says so."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )
    if not found:
        raise PgBouncerUnavailable("no pgbouncer binary on PATH or in /usr/sbin")
    return found


@contextmanager
def pgbouncer_in_front_of(database_url: str, *, run_as: str | None) -> Iterator[str]:
    """Serve `database_url`'s server through PgBouncer (pool_mode = transaction); yields the
    URL of the same database through it."""
    binary = _binary()
    server = make_url(database_url)
    folder = Path(tempfile.mkdtemp(prefix="nurture-pgbouncer-", dir="/tmp"))
    port = _free_port()
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port} user={server.username}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {folder}\n"
        "auth_type = any\n"
        f"admin_users = {server.username}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 300\n"
        "default_pool_size = 8\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {folder / 'pgbouncer.log'}\n",
        encoding="utf-8",
    )
    argv = [binary, str(config)]
    if run_as:
        import pwd  # deferred: POSIX only, and only when running as root

        user = pwd.getpwnam(run_as)
        os.chown(folder, user.pw_uid, user.pw_gid)
        os.chown(config, user.pw_uid, user.pw_gid)
        argv = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", run_as, "--", *argv]
    process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                log_file = folder / "pgbouncer.log"
                log = log_file.read_text(errors="replace") if log_file.exists() else ""
                said = process.stderr.read() if process.stderr else ""
                raise PgBouncerUnavailable(f"pgbouncer exited {process.returncode}: {said}{log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise PgBouncerUnavailable("pgbouncer did not listen within 20 s") from None
                time.sleep(0.05)
        yield server.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
