"""Campaign steps written into a test project's campaigns/, and the checks' findings about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.config import Config
from nurture.content.rules import Finding


def write_step(
    config: Config, body: str, *, name: str = "01-broken.md", campaign: str = "broken", **front: str
) -> Path:
    """campaigns/<campaign>/<name> with the given front matter (subject/preheader defaulted) and body."""
    front = {"subject": "A fine subject", "preheader": "A fine preheader", "article": "some-article", **front}
    front = {key: value for key, value in front.items() if value is not None}
    folder = config.campaigns_dir / campaign
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "\n".join(["---", *(f"{k}: {v}" for k, v in front.items()), "---", body]) + "\n", encoding="utf-8"
    )
    steps = sorted(p.name for p in folder.glob("*.md"))
    spec = "title: Broken\nsteps:\n" + "".join(f"  - file: {s}\n    delay_days: 1\n" for s in steps)
    (folder / "campaign.yaml").write_text(spec, encoding="utf-8")
    return path


def lines_of(findings: list[Finding]) -> list[str]:
    return [str(finding) for finding in findings]


def assert_finding(findings: list[Finding], path: Path, line: int | None, *words: str) -> None:
    for finding in findings:
        if finding.path == path and finding.line == line and all(word in finding.message for word in words):
            return
    pytest.fail(f"no finding {path}:{line} with {words!r} in:\n" + "\n".join(lines_of(findings)))
