"""The series copy is ours: no run of 8 words from the source articles, 150-300 words,
plain (reading grade 8 or below), and never written as if the reader were a patient."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from nurture.content.campaigns import load_campaigns, load_email, newsletter_files
from tests.support.copycheck import fk_grade, shingles, words
from tests.support.factories import REPO

CANDIDATES = [REPO.parent / "shared" / "articles", Path("/work/shared/articles")]
EMAILS = [step.email for campaign in load_campaigns(REPO / "campaigns").values() for step in campaign.steps]
NEWSLETTERS = [load_email(path) for path in newsletter_files(REPO / "campaigns")]
PATIENT_PHRASES = re.compile(
    r"\byour (depression|anxiety|ptsd|trauma|treatment|sessions?|diagnosis|condition|symptoms)\b", re.I
)


def sources() -> Path:
    for folder in CANDIDATES:
        if folder.is_dir():
            return folder
    if os.environ.get("CI") == "true":
        pytest.fail(f"shared/articles not found beside the checkout (looked in {CANDIDATES})", pytrace=False)
    pytest.skip("shared/articles not found: run from a checkout with shared/ beside it")


def test_the_series_has_the_five_topics_in_order() -> None:
    names = [email.path.stem for email in EMAILS[:5]]
    assert names == [
        "01-what-is-kap",
        "02-the-neuroscience",
        "03-is-kap-safe",
        "04-a-dosing-session",
        "05-next-steps",
    ]


@pytest.mark.parametrize("email", EMAILS + NEWSLETTERS, ids=lambda email: email.path.stem)
def test_no_run_of_eight_words_is_copied_from_the_sources(email: object) -> None:
    folder = sources()
    copied: set[tuple[str, ...]] = set()
    for source in sorted(folder.iterdir()):
        if source.suffix in (".txt", ".md"):
            copied |= shingles(words(source.read_text(encoding="utf-8")))
    overlap = shingles(words(email.body)) & copied  # type: ignore[attr-defined]
    assert not overlap, f"{email.path}: copied runs: {[' '.join(run) for run in overlap]}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("email", EMAILS, ids=lambda email: email.path.stem)
def test_each_email_is_150_to_300_words_and_plain(email: object) -> None:
    count = len(words(email.body))  # type: ignore[attr-defined]
    assert 150 <= count <= 300, f"{email.path}: {count} words"  # type: ignore[attr-defined]
    assert fk_grade(email.body) <= 8.0, f"{email.path}: reading grade {fk_grade(email.body):.1f}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("email", EMAILS + NEWSLETTERS, ids=lambda email: email.path.stem)
def test_never_assumes_the_reader_is_a_patient(email: object) -> None:
    found = PATIENT_PHRASES.findall(email.body + email.subject)  # type: ignore[attr-defined]
    assert not found, f"{email.path}: {found}"  # type: ignore[attr-defined]


def test_copy_checker_catches_a_copied_run() -> None:
    sentence = "one two three four five six seven eight nine"
    assert shingles(words(sentence)) & shingles(words("x " + sentence.upper() + "!"))
    assert fk_grade("The cat sat. The dog ran.") < fk_grade(
        "Neuroplasticity encompasses multifaceted physiological reorganization phenomena."
    )
