"""CSV files for the import tests, written as a spreadsheet or a script would write them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

HEADER = ["email", "first_name", "timezone", "consented_at", "consent_source"]


def write_csv(
    path: Path, rows: list[list[str]], *, header: list[str] = HEADER, encoding: str = "utf-8"
) -> Path:
    """`rows` under `header`, lines ended with CRLF as a spreadsheet saves them."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding=encoding, newline="")
    return path


def write_csv_lf(path: Path, rows: list[list[str]]) -> Path:
    """`rows` under HEADER, lines ended with LF alone as a script writes them."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return path
