"""Flesch-Kincaid grade of an email's prose, computed here (no package: the ones on PyPI
fetch word lists at run time).

Prose only: the text of paragraphs, list items and headings as a reader sees it.
Links count as their label (the URL is removed), code and images are left out.
Sentences end only at ".", "!" or "?": a list item without a full stop runs into
the next, as it does in most readability tools, so a long bulleted list cannot
hide a long sentence.

grade = 0.39 * words/sentences + 11.8 * syllables/words - 15.59
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)]*(?=\s|$)")


def prose(markdown: str) -> str:
    """The visible words of a Markdown body, blocks joined by spaces, links reduced to their labels."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type != "inline":
            continue
        pieces = []
        for child in token.children or []:
            if child.type == "text":
                pieces.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                pieces.append(" ")
        text = " ".join("".join(pieces).split())
        if text:
            blocks.append(text)
    return " ".join(blocks)


def syllables(word: str) -> int:
    """Vowel groups, less a silent final e / -es / -ed (not after t or d: "wanted"); at least one."""
    w = word.lower().replace("\u2019", "'").split("'")[0]
    if not w.isalpha():
        return 1 if not any(ch.isdigit() for ch in w) else max(1, len(w) // 2)
    if len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouy]es|[^laeiouytd]ed|[^laeiouy]e)$", lambda m: m.group(0)[0], w)
    w = re.sub(r"^y", "", w)
    return max(1, len(re.findall(r"[aeiouy]+", w)))


def sentence_count(text: str) -> int:
    parts = [part for part in _SENTENCE_END.split(text) if _WORD.search(part)]
    return max(1, len(parts))


def fk_grade(text: str) -> float:
    """Flesch-Kincaid grade level of plain text."""
    words = _WORD.findall(text)
    if not words:
        return 0.0
    per_sentence = len(words) / sentence_count(text)
    per_word = sum(syllables(word) for word in words) / len(words)
    return 0.39 * per_sentence + 11.8 * per_word - 15.59


def email_grade(markdown: str) -> float:
    return fk_grade(prose(markdown))
