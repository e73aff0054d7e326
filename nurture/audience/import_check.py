"""What importing a CSV file would do, before it is done: the console's import report.

The file is imported for real, inside a transaction that is then rolled back (App.rehearsal):
the same rules and the same figures as the import itself (people added, people already
on the list, repeated lines, rows refused and why, addresses that may not be added),
and nothing is kept. Committing imports it again for real: what changed meanwhile (someone
unsubscribed since) is counted as it is then.

On SQLite the rehearsal holds the write lock while it runs, as the import does: a
sending pass waits for it (seconds for the largest file the console accepts).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from nurture.app import App
from nurture.audience.import_report import ImportReport
from nurture.audience.importer import import_csv
from nurture.providers.recording import RecordingTransport

READ_SIZE = 1 << 20


def check_csv(
    app: App,
    path: Path,
    now: datetime,
    *,
    checked: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """The report importing `path` (the good rows; the others listed) would give now."""
    with app.rehearsal(RecordingTransport()) as trial:
        return import_csv(trial, path, now, skip_invalid=True, checked=checked, progress=progress)


def count_lines(path: Path) -> int:
    """Lines in the file, less the header: about its rows (a quoted value may span lines)."""
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_SIZE):
            lines += block.count(b"\n")
    return max(lines - 1, 0)
