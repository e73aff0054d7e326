"""Content as approved: what the store keeps of an email file, and the email back from it.

A newsletter is kept like this when it is scheduled, so later edits of its file do
not change what goes out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nurture.content.campaigns import EmailSource, FrontMatter


def stored_content(source: EmailSource) -> dict[str, Any]:
    """What is kept of an email file when it is approved."""
    return {"front": source.front.model_dump(), "body": source.body, "body_line": source.body_line}


def source_from_stored(path: str, content: dict[str, Any]) -> EmailSource:
    return EmailSource(
        path=Path(path),
        front=FrontMatter.model_validate(content["front"]),
        body=content["body"],
        body_line=int(content.get("body_line", 1)),
    )


def text_from_stored(content: dict[str, Any]) -> str:
    """The file an approved email was read from, written back: front matter, then the body.

    Values are written as JSON strings, which YAML reads as double-quoted scalars, so any
    text comes back exactly; keys left at their defaults are left out."""
    front = content.get("front") or {}
    lines = ["---"]
    lines += [
        f"{key}: {json.dumps(value, ensure_ascii=False)}"
        for key, value in front.items()
        if value is not None and value != ""
    ]
    lines.append("---")
    return "\n".join(lines) + "\n" + str(content.get("body", ""))
