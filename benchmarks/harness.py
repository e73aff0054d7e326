"""Shared pieces of the sending benchmarks: the stand-in process, stores that can be
copied, and running commands in child processes with their time, CPU and peak memory.

Peak memory is each command's ru_maxrss from wait4. A child's ru_maxrss starts at its
parent's size at the fork (Linux carries it across exec), so each command is forked from a
small launcher (`LAUNCHER`) that reports it: a benchmark's own size (a console it served, a
store it filled) never counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, without installing

from tests.support.factories import SECRET, write_project

REPO = Path(__file__).resolve().parents[1]


def start_standin(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.sendgrid_standin",
            "--port",
            "0",
            "--latency",
            str(latency),
            "--api-key",
            "SG.bench",
            "--count-only",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its closing summary; the counts come from /_standin/stats
        text=True,
    )
    line = process.stdout.readline().strip() if process.stdout else ""
    if not line.startswith("READY "):
        raise SystemExit(f"stand-in did not start: {line!r}")
    return process, line.split(" ", 1)[1]


def standin_stats(url: str) -> dict[str, Any]:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/_standin/stats") as answer:
        stats: dict[str, Any] = json.loads(answer.read())
    return stats


@dataclass
class Run:
    seconds: float  # wall time until the last command ended
    peak_mib: float  # the largest peak RSS among the commands
    cpu: float  # user + system seconds, all commands together
    output: str

    def line(self, label: str, count: int, minimal: Run | None = None) -> str:
        # Wall-time ratio as the issue states it; the CPU ratio moves less with the machine's load.
        ratio = (
            f"  {minimal.seconds / self.seconds:4.2f} of minimal (CPU {minimal.cpu / self.cpu:4.2f})"
            if minimal
            else ""
        )
        return (
            f"  {label:<34} {count:>9,} emails {self.seconds:7.2f} "
            f"s {count / self.seconds if count else 0:9,.0f}/s  "
            f"CPU {self.cpu:6.1f} s  peak RSS {self.peak_mib:6.1f} MiB{ratio}"
        )


# Runs its arguments as a command and prints, as the last line of its standard error, the
# command's peak RSS (KiB) and CPU seconds; exits with the command's status.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_all(commands: list[list[str]], env: dict[str, str], cwd: Path) -> Run:
    """Start the commands together; wait for all. Raises SystemExit if one fails."""
    began = time.perf_counter()
    started = []
    peak = cpu = 0.0
    outputs = []
    with contextlib.ExitStack() as files:
        for command in commands:
            out = files.enter_context(tempfile.TemporaryFile())
            err = files.enter_context(tempfile.TemporaryFile())
            launched = [sys.executable, "-S", "-c", LAUNCHER, *command]
            started.append(
                (subprocess.Popen(launched, cwd=cwd, env=env, stdout=out, stderr=err), out, err, command)
            )
        for process, out, err, command in started:
            returncode = process.wait()
            out.seek(0)
            err.seek(0)
            text, errors = out.read().decode(), err.read().decode()
            if returncode:
                raise SystemExit(f"{' '.join(command)} failed ({returncode}): {errors.strip()[-3000:]}")
            peak_kib, seconds = errors.strip().splitlines()[-1].split()
            peak = max(peak, int(peak_kib) / 1024)
            cpu += float(seconds)
            outputs.append(text.strip())
    return Run(time.perf_counter() - began, peak, cpu, " | ".join(outputs))


class Store:
    """A filled store that can be copied, so the real pass and the minimal script start equal."""

    def __init__(self, folder: Path, server: Any = None) -> None:
        self.folder = folder
        self.server = server
        self.databases: list[str] = []
        self.url = self._new_url("base")

    def _new_url(self, name: str) -> str:
        if self.server is None:
            return f"sqlite:///{self.folder / name / 'nurture.db'}"
        database = f"nurture_bench_{os.getpid()}_{name}"
        self.databases.append(database)
        url: str = self.server.create_database(database)
        return url

    def copy(self, name: str) -> str:
        if self.server is None:
            target = self.folder / name
            target.mkdir()
            for path in (self.folder / "base").glob("nurture.db*"):
                shutil.copy(path, target / path.name)
            return f"sqlite:///{target / 'nurture.db'}"
        from psycopg import sql  # deferred: only a PostgreSQL store needs it

        database = f"nurture_bench_{os.getpid()}_{name}"
        self.databases.append(database)
        with self.server._connect() as connection:
            source = f"nurture_bench_{os.getpid()}_base"
            connection.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(database), sql.Identifier(source)
                )
            )
        return str(self.url).rsplit("/", 1)[0] + f"/{database}"

    def drop(self) -> None:
        for database in self.databases:
            self.server.drop_database(database)


def project(
    folder: Path, url: str, standin_url: str, overrides: dict[str, Any]
) -> tuple[Path, dict[str, str]]:
    """A project folder on the store at url, and the environment to run nurture in it."""
    folder.mkdir(parents=True, exist_ok=True)
    config_path = write_project(folder, {"database.url": url, "delivery.transport": "sendgrid", **overrides})
    env = {
        **os.environ,
        "NURTURE_SECRET_KEY": SECRET,
        "SENDGRID_API_KEY": "SG.bench",
        "NURTURE_SENDGRID_HOST": standin_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "NURTURE_CONFIG": str(config_path),
    }
    return config_path, env


def send_with_standin(
    latency: float, commands: list[list[str]], env: dict[str, str], cwd: Path, expected: int
) -> Run:
    """Run the commands against a fresh stand-in (its URL replaces STANDIN in them and in env)."""
    standin, url = start_standin(latency)
    try:
        env = {**env, "NURTURE_SENDGRID_HOST": url}
        run = run_all(
            [[url if part == "STANDIN" else part for part in command] for command in commands], env, cwd
        )
        received = standin_stats(url)["messages"]
        if received != expected:
            raise SystemExit(f"the stand-in received {received} messages, expected {expected}: {run.output}")
        return run
    finally:
        standin.terminate()
        standin.wait(timeout=10)


# A benchmark's throwaway cluster keeps PostgreSQL's own defaults for what changes plans,
# as a real server has them: autovacuum (it keeps the planner's statistics current while
# a pass writes; without it a 1,000,000-email pass planned for an empty deliveries table
# and JIT-compiled a 2 ms statement for 130 ms each batch) and 128 MB of buffers. The
# tests' cluster turns both down. Durability stays off as in the tests: its cost is the
# disk's, and the minimal script pays it alike.
SERVER_DEFAULTS = {"autovacuum": "on", "shared_buffers": "128MB"}


def add_postgres_option(parser: argparse.ArgumentParser) -> None:
    """--start-postgres, which `postgres_server` reads."""
    parser.add_argument(
        "--start-postgres", action="store_true", help="run on a throwaway local PostgreSQL cluster"
    )


def postgres_server(args: argparse.Namespace) -> Any:
    """The server at NURTURE_BENCH_POSTGRES_URL, else a throwaway cluster started here with
    --start-postgres, else None: the benchmark runs on SQLite."""
    url = os.environ.get("NURTURE_BENCH_POSTGRES_URL")
    if not url and not args.start_postgres:
        return None
    from tests.support.postgres import PostgresServer  # deferred: only a PostgreSQL run needs it

    return PostgresServer(url) if url else PostgresServer.start(settings=SERVER_DEFAULTS)


def each_size(sizes: list[int], prefix: str, bench_size: Any, args: Any, server: Any) -> None:
    """Run `bench_size(size, args, folder, server)` for every size in a fresh temporary
    folder, with the load average before and after (it says how far to trust wall times);
    stops the PostgreSQL server, if any, at the end."""
    print(
        f"load average before: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    try:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix=prefix) as name:
                bench_size(size, args, Path(name), server)
    finally:
        if server is not None:
            server.stop()
    print(f"load average after: {' '.join(f'{n:.1f}' for n in os.getloadavg())}", flush=True)
