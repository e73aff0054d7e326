"""The documentation tells the truth about commands and links.

- Every shell block marked runnable in README.md and docs/*.md runs as written. A
  block is marked by its info string: a fence opened with ```` ```sh runnable ````.
  The blocks of one page run in order, in one bash (`-euo pipefail`), in a fresh
  copy of the project, as a reader would type them into one terminal: the project's
  virtualenv on PATH, a throwaway NURTURE_SECRET_KEY, no other nurture or provider
  variable. Each page must exit 0.
- README.md is under 200 lines and links every docs page.
- Every relative link and image in the docs points at a file that exists, and every
  #anchor at a heading of that file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
# A docs page may have pages of its own in a folder of its name (docs/console.md: docs/console/).
SUB_PAGES = sorted(DOCS.glob("*/*.md"))
# The owner's guides to the console, one task a page, linked from docs/console.md.
CONSOLE_GUIDES = [page for page in SUB_PAGES if page.parent.name == "console"]
DOC_PAGES = [README, *sorted(DOCS.glob("*.md")), *SUB_PAGES]
LINKED_PAGES = [*DOC_PAGES, REPO / "CONTRIBUTING.md", REPO / "benchmarks" / "RESULTS.md"]
README_MAX_LINES = 200
IMAGE_MAX_BYTES = 256 * 1024
PAGE_TIMEOUT = 600  # seconds for all the blocks of one page (the README runs `make demo`)

# Made by running the project, never part of a fresh copy (only at the top level).
NOT_COPIED_AT_TOP = {
    ".git",
    ".venv",
    ".venv-lock",
    "demo",
    "outbox",
    "preview",
    "test-artifacts",
    "report.html",
}
NOT_COPIED_ANYWHERE = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
# Variables that would make a block depend on this machine rather than on the docs.
HIDDEN_ENV_PREFIXES = ("NURTURE_", "SENDGRID_", "VIRTUAL_ENV")

FENCE = re.compile(r"^(?P<marker>`{3,}|~{3,})(?P<info>.*)$")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    info: str
    text: str

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def runnable(self) -> bool:
        return "runnable" in self.words

    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (CommonMark fences, not nested)."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    opened: tuple[int, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        if opened is None:
            fence = FENCE.match(line)
            if fence:
                opened, body = (number, fence["marker"], fence["info"].strip()), []
            continue
        start, marker, info = opened
        stripped = line.strip()
        if stripped and set(stripped) == {marker[0]} and len(stripped) >= len(marker):
            blocks.append(Block(page, start, info, "\n".join(body) + "\n"))
            opened = None
        else:
            body.append(line)
    assert opened is None, f"{page.relative_to(REPO)}:{opened[0]}: a code fence is never closed"
    return blocks


def prose_lines(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced blocks, with inline code removed."""
    kept: list[tuple[int, str]] = []
    inside: str | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if inside is None and fence:
            inside = fence["marker"]
            continue
        if inside is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {inside[0]} and len(stripped) >= len(inside):
                inside = None
            continue
        kept.append((number, INLINE_CODE.sub("", line)))
    return kept


def links(page: Path) -> list[tuple[int, str]]:
    return [(number, match["target"]) for number, line in prose_lines(page) for match in LINK.finditer(line)]


def anchor(text: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its words
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(page):
        heading = HEADING.match(line)
        if not heading:
            continue
        base = anchor(heading["text"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


RUNNABLE_PAGES = [page for page in DOC_PAGES if any(block.runnable for block in fenced_blocks(page))]


# ---------------------------------------------------------------- the runnable blocks


def test_runnable_blocks_are_marked_the_documented_way() -> None:
    """A marker with another language (or a typo of one) would be silently skipped."""
    wrong = [
        f"{block.where()}: ```{block.info}"
        for page in DOC_PAGES
        for block in fenced_blocks(page)
        if block.runnable and block.words[0] != "sh"
    ]
    assert not wrong, "runnable blocks must open with ```sh runnable:\n" + "\n".join(wrong)
    assert README in RUNNABLE_PAGES, "the README's tour must have runnable blocks"
    assert sum(block.runnable for page in DOC_PAGES for block in fenced_blocks(page)) >= 10


def fresh_copy(target: Path) -> Path:
    """The project as a fresh clone has it, with the test run's virtualenv linked in."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {name for name in names if name in NOT_COPIED_ANYWHERE or name.endswith(".egg-info")}
        if Path(folder) == REPO:
            skipped |= {name for name in names if name in NOT_COPIED_AT_TOP or name.startswith("nurture.db")}
        return skipped

    project = target / "project"
    shutil.copytree(REPO, project, ignore=ignore, symlinks=True)
    # The virtualenv's parts are linked, not copied, and its install stamp is fresh, so
    # `make demo` finds it installed and nothing in the real one is ever touched.
    venv = Path(sys.prefix)
    assert venv != Path(sys.base_prefix), "run the tests from the project's virtualenv (make test)"
    (project / ".venv").mkdir()
    for part in venv.iterdir():
        if part.name != ".installed":
            (project / ".venv" / part.name).symlink_to(part, target_is_directory=part.is_dir())
    (project / ".venv" / ".installed").touch()
    return project


def shell_environment(project: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(HIDDEN_ENV_PREFIXES)}
    env["PATH"] = f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["NURTURE_SECRET_KEY"] = secrets.token_urlsafe(32)
    return env


def page_script(page: Path) -> str:
    parts = []
    for block in fenced_blocks(page):
        if block.runnable:
            parts.append(f"printf '\\n### block %s\\n' {block.where()!r} >&2\n{block.text}")
    return "".join(parts)


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_runnable_blocks_run_as_written(page: Path, tmp_path: Path) -> None:
    project = fresh_copy(tmp_path)
    script = tmp_path / "blocks.sh"
    script.write_text(page_script(page), encoding="utf-8")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=project,
        env=shell_environment(project),
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        started = re.findall(r"^### block (.+)$", result.stderr, re.M)
        failed = started[-1] if started else "(before the first block)"
        pytest.fail(
            f"the runnable block at {failed} exited {result.returncode}\n"
            f"--- stdout (end)\n{result.stdout[-3000:]}\n--- stderr (end)\n{result.stderr[-3000:]}",
            pytrace=False,
        )


# ---------------------------------------------------------------- the README and links


def test_readme_is_under_200_lines() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count < README_MAX_LINES, (
        f"README.md has {count} lines; keep it under {README_MAX_LINES} and move detail to docs/"
    )


def test_readme_links_every_docs_page() -> None:
    linked = {(REPO / target.split("#")[0]).resolve() for _, target in links(README) if "://" not in target}
    wanted = [*sorted(DOCS.glob("*.md")), REPO / "CONTRIBUTING.md", REPO / "benchmarks" / "RESULTS.md"]
    missing = [str(page.relative_to(REPO)) for page in wanted if page.resolve() not in linked]
    assert not missing, f"README.md does not link: {', '.join(missing)}"


def test_the_console_page_links_every_owners_guide() -> None:
    linked = {(DOCS / target.partition("#")[0]).resolve() for _, target in links(DOCS / "console.md")}
    missing = [str(guide.relative_to(REPO)) for guide in CONSOLE_GUIDES if guide.resolve() not in linked]
    assert CONSOLE_GUIDES and not missing, f"docs/console.md does not link: {', '.join(missing)}"


def test_each_sub_page_is_linked_from_its_page() -> None:
    missing = []
    for sub_page in SUB_PAGES:
        parent = DOCS / f"{sub_page.parent.name}.md"
        linked = (
            {(parent.parent / target.split("#")[0]).resolve() for _, target in links(parent)}
            if parent.is_file()
            else set()
        )
        if sub_page.resolve() not in linked:
            missing.append(f"{sub_page.relative_to(REPO)} (from {parent.relative_to(REPO)})")
    assert not missing, "not linked: " + ", ".join(missing)


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    assert page.is_file(), f"{page.relative_to(REPO)} is missing"
    broken = []
    for number, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{where}: no heading with the anchor #{fragment} in {linked.name}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_images_are_used_and_small() -> None:
    used = {
        (page.parent / target).resolve()
        for page in LINKED_PAGES
        for _, target in links(page)
        if target.endswith(".png")
    }
    for image in sorted((DOCS / "images").glob("*")):
        assert image.suffix == ".png", f"{image.relative_to(REPO)}: docs images are PNG"
        assert image.resolve() in used, f"{image.relative_to(REPO)} is not shown on any page"
        assert image.stat().st_size <= IMAGE_MAX_BYTES, (
            f"{image.relative_to(REPO)} is over {IMAGE_MAX_BYTES // 1024} KiB"
        )
