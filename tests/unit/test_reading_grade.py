"""Every series email reads at Flesch-Kincaid grade 8 or below (prose only, links removed).

The grade is computed by tests/support/readability.py; its sentence rule is the strict
one (a list item without a full stop runs into the next sentence)."""

from __future__ import annotations

import pytest

from nurture.content.campaigns import load_campaigns
from tests.support.factories import REPO
from tests.support.readability import email_grade, fk_grade, prose, sentence_count, syllables

MAX_GRADE = 8.0
EMAILS = [step.email for campaign in load_campaigns(REPO / "campaigns").values() for step in campaign.steps]


def test_the_series_is_there() -> None:
    assert len(EMAILS) >= 5


@pytest.mark.parametrize("email", EMAILS, ids=lambda email: email.path.stem)
def test_each_series_email_reads_at_grade_8_or_below(email: object) -> None:
    grade = email_grade(email.body)  # type: ignore[attr-defined]
    assert grade <= MAX_GRADE, (
        f"{email.path}: Flesch-Kincaid grade {grade:.1f} (at most {MAX_GRADE}): "  # type: ignore[attr-defined]
        "shorter sentences, plainer words"
    )


def test_prose_keeps_link_labels_and_drops_urls_and_code() -> None:
    text = prose(
        "Read [the article](https://example.com/a-very-long-address) now.\n\n"
        "```\ncode here\n```\n\n- one\n- two\n"
    )
    assert text == "Read the article now. one two"


def test_the_grade_follows_the_formula() -> None:
    # 2 sentences, 6 words, 6 syllables: 0.39 * 3 + 11.8 * 1 - 15.59
    assert fk_grade("The cat sat. The dog ran.") == pytest.approx(0.39 * 3 + 11.8 - 15.59)
    assert [syllables(w) for w in ("cat", "wanted", "made", "ketamine", "psychotherapy")] == [1, 2, 1, 3, 5]
    assert sentence_count("- a list item\n- runs on. Then a sentence!") == 2


def test_a_hard_text_scores_above_8() -> None:
    hard = (
        "Ketamine-assisted psychotherapy integrates pharmacological neuroplasticity facilitation with "
        "psychotherapeutic integration, potentially ameliorating treatment-resistant "
        "depressive symptomatology."
    )
    assert fk_grade(hard) > MAX_GRADE
