"""Markdown, the way emails use it: a parser that never passes raw HTML through, and
the plain-text part made from the same tokens the HTML part is rendered from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token


def markdown_parser() -> MarkdownIt:
    # commonmark with html=False: raw HTML in the Markdown is shown as text, never passed through.
    # markdown-it also refuses javascript:, vbscript:, file: and data: links.
    return MarkdownIt("commonmark", {"html": False, "typographer": False})


def _inline_text(children: Sequence[Token]) -> str:
    out: list[str] = []
    link_stack: list[tuple[str, int]] = []
    for child in children:
        kind = child.type
        if kind == "text" or kind == "code_inline":
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link_open":
            link_stack.append((str(child.attrGet("href") or ""), len(out)))
        elif kind == "link_close" and link_stack:
            href, start = link_stack.pop()
            label = "".join(out[start:]).strip()
            if href and href not in (label, f"mailto:{label}"):
                out.append(f" ({href})")
        elif kind == "image":
            alt = "".join(c.content for c in child.children or [])
            src = str(child.attrGet("src") or "")
            out.append(f"[{alt}] ({src})" if alt else f"({src})")
    return "".join(out)


def markdown_to_text(tokens: Sequence[Token]) -> str:
    """Plain text from markdown-it tokens: paragraphs, lists, links as 'text (https://url)'."""
    blocks: list[tuple[str, bool]] = []  # (text, inside a list)
    lists: list[list[Any]] = []  # [ordered, counter]
    marker: str | None = None
    quote = 0
    heading = False

    def add(text: str, first: str, rest: str) -> None:
        lines = text.split("\n")
        prefix = "> " * quote
        shaped = [prefix + (first if i == 0 else rest) + line.strip() for i, line in enumerate(lines)]
        blocks.append(("\n".join(shaped), bool(lists)))

    for tok in tokens:
        kind = tok.type
        if kind == "bullet_list_open":
            lists.append([False, 0])
        elif kind == "ordered_list_open":
            lists.append([True, int(tok.attrGet("start") or 1) - 1])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            lists[-1][1] += 1
            marker = f"{lists[-1][1]}. " if lists[-1][0] else "- "
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "heading_open":
            heading = True
        elif kind == "heading_close":
            heading = False
        elif kind == "inline":
            text = _inline_text(tok.children or [])
            if heading:
                text = text.upper() if len(text) < 60 else text
            indent = "   " * (len(lists) - 1) if lists else ""
            if marker:
                add(text, indent + marker, indent + " " * len(marker))
                marker = None
            else:
                pad = indent + "   " if lists else ""
                add(text, pad, pad)
        elif kind in ("fence", "code_block"):
            add(tok.content.rstrip("\n"), "    ", "    ")
        elif kind == "hr":
            add("----", "", "")
    parts: list[str] = []
    for index, (text, in_list) in enumerate(blocks):
        if index:
            parts.append("\n" if in_list and blocks[index - 1][1] else "\n\n")
        parts.append(text)
    return "".join(parts)
