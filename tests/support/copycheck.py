"""Copy checks for the emails: words copied from the sources, length, reading grade."""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    """Lower-cased words; punctuation ignored, apostrophes folded ("brain's" -> "brains")."""
    text = text.lower().replace("\u2019", "").replace("\u2018", "").replace("'", "")
    return re.findall(r"[a-z0-9]+", text)


def shingles(tokens: list[str], n: int = 8) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def syllables(word: str) -> int:
    w = word.lower()
    if not w.isalpha() or len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouy]es|ed|[^laeiouy]e)$", "", w)  # silent endings
    w = re.sub(r"^y", "", w)
    return max(1, len(re.findall(r"[aeiouy]+", w)))


def sentences(text: str) -> list[str]:
    """Split on . ! ? and on line ends (list items and paragraphs without a full stop)."""
    text = re.sub(r"[*_`#>]", "", text)
    parts = re.split(r"[.!?]+(?=\s|$)|\n\s*[-*]\s+|\n\s*\n|\n", text)
    return [part for part in parts if words(part)]


def fk_grade(text: str) -> float:
    """Flesch-Kincaid grade level."""
    tokens = words(text)
    if not tokens:
        return 0.0
    count = max(1, len(sentences(text)))
    return 0.39 * (len(tokens) / count) + 11.8 * (sum(syllables(w) for w in tokens) / len(tokens)) - 15.59
