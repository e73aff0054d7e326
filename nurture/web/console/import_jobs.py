"""CSV uploads being checked and imported by this `nurture serve` process.

An upload is written to a private folder (0700) under the system's temporary folder,
then checked in a thread of its own (nurture.audience.import_check); the owner's page
follows its progress. Committing imports it in another thread. The file holds people's
addresses: it is deleted once imported or discarded, and any upload left for a day is
deleted when the next one arrives.

The work happens in the process that received the upload: behind several `nurture
serve` processes, the upload's page must reach the same one (a sticky session), else it
says the upload is not here.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from nurture.app import App
from nurture.audience.import_check import check_csv, count_lines
from nurture.audience.import_report import ImportReport
from nurture.audience.importer import import_csv
from nurture.errors import NurtureError

log = logging.getLogger(__name__)

KEPT_FOR = 24 * 3600  # seconds an upload nobody acts on is kept


class Phase(StrEnum):
    CHECKING = "checking"
    CHECKED = "checked"
    IMPORTING = "importing"
    IMPORTED = "imported"
    FAILED = "failed"


@dataclass
class ImportJob:
    token: str
    owner: str  # the owner who uploaded it: nobody else sees it
    file_name: str  # as uploaded, to name it on the page
    path: Path
    size: int
    rows: int  # about: the file's lines less the header
    phase: Phase = Phase.CHECKING
    done: int = 0  # rows read (checking: both passes count; importing: rows written)
    report: ImportReport | None = None  # what importing would do (after checking)
    result: ImportReport | None = None  # what importing did
    problem: str | None = None  # why it could not be checked or imported, in the owner's words
    created: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def busy(self) -> bool:
        return self.phase in (Phase.CHECKING, Phase.IMPORTING)

    @property
    def share(self) -> float:
        """How far along the current phase is, from 0 to 1 (checking reads the file twice)."""
        work = max(self.rows * (2 if self.phase == Phase.CHECKING else 1), 1)
        return min(self.done / work, 1.0)


def plain(exc: NurtureError, job: ImportJob) -> str:
    """An import error without the server's path of the uploaded file."""
    return str(exc).replace(str(job.path), job.file_name).replace(job.path.name, job.file_name)


class ImportJobs:
    """This process's uploads, by their random token."""

    def __init__(self) -> None:
        self._jobs: dict[str, ImportJob] = {}
        self._lock = threading.Lock()
        self._folder: Path | None = None

    def folder(self) -> Path:
        with self._lock:
            if self._folder is None or not self._folder.is_dir():
                self._folder = Path(tempfile.mkdtemp(prefix="nurture-uploads-"))  # mode 0700
            return self._folder

    def new_path(self) -> Path:
        self._forget_old()
        return self.folder() / f"{secrets.token_hex(16)}.csv"

    def get(self, token: str, owner: str) -> ImportJob | None:
        with self._lock:
            job = self._jobs.get(token)
        return job if job is not None and job.owner == owner else None

    def start_check(self, app: App, path: Path, file_name: str, owner: str, now: datetime) -> ImportJob:
        job = ImportJob(
            secrets.token_urlsafe(24), owner, file_name, path, path.stat().st_size, count_lines(path)
        )
        with self._lock:
            self._jobs[job.token] = job

        def count(rows: int) -> None:
            job.done = rows

        def written(rows: int) -> None:
            job.done += rows

        def work() -> None:
            report = check_csv(app, path, now, checked=count, progress=written)
            with job.lock:
                job.report, job.phase = report, Phase.CHECKED

        self._run(job, work)
        return job

    def start_import(self, app: App, job: ImportJob, now: datetime) -> bool:
        """Import a checked upload. False if it is not waiting to be imported (a second click)."""
        with job.lock:
            if job.phase != Phase.CHECKED:
                return False
            job.phase, job.done = Phase.IMPORTING, 0

        def written(rows: int) -> None:
            job.done += rows

        def work() -> None:
            try:
                result = import_csv(
                    app,
                    job.path,
                    now,
                    skip_invalid=True,
                    progress=written,
                    note=f"imported from {job.file_name}",
                )
            finally:
                job.path.unlink(missing_ok=True)
            with job.lock:
                job.result, job.phase = result, Phase.IMPORTED

        self._run(job, work)
        return True

    def discard(self, job: ImportJob) -> bool:
        """Forget an upload that is not being worked on. False while a thread still uses it."""
        with job.lock:
            if job.busy:
                return False
            job.phase = Phase.FAILED
        job.path.unlink(missing_ok=True)
        with self._lock:
            self._jobs.pop(job.token, None)
        return True

    def _run(self, job: ImportJob, work: Callable[[], None]) -> None:
        def target() -> None:
            try:
                work()
            except NurtureError as exc:
                with job.lock:
                    job.problem, job.phase = plain(exc, job), Phase.FAILED
                job.path.unlink(missing_ok=True)
            except Exception as exc:  # noqa: BLE001 - the page must say it failed, never wait forever
                log.error("a console import failed: %s", type(exc).__name__)
                with job.lock:
                    job.problem = (
                        "Something went wrong on the server, and nothing was imported. Please try again."
                    )
                    job.phase = Phase.FAILED
                job.path.unlink(missing_ok=True)

        threading.Thread(target=target, name=f"console-import-{job.token[:6]}", daemon=True).start()

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - KEPT_FOR
        with self._lock:
            old = [job for job in self._jobs.values() if job.created < cutoff and not job.busy]
            for job in old:
                self._jobs.pop(job.token, None)
        for job in old:
            job.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete every upload still here (the process is stopping)."""
        with self._lock:
            folder, self._folder = self._folder, None
            self._jobs.clear()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
