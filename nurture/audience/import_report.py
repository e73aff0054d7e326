"""What an import found and did: the report both passes fill in (nurture.audience.importer)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RowProblem:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.column}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    activated: int = 0
    merged: int = 0  # already active, or a duplicate line within the file
    invalid: list[RowProblem] = field(default_factory=list)  # the first MAX_PROBLEMS
    invalid_count: int = 0  # all of them
    skipped_erased: int = 0
    skipped_unsubscribed: int = 0
    enrolled: int = 0
