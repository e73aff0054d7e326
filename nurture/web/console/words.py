"""Errors said in the owner's words on console pages.

The core's errors are written for the command line as well: they name options
(`--at`), commands (`nurture check`) and files (campaigns/x/01.md:3). On a console page
those mean nothing to her, so `in_her_words` leaves out command hints and option names
and says "the file" for a path; what happened and what to do stay. Console handlers
show every NurtureError through it.
"""

from __future__ import annotations

import re

_HINT_IN_BRACKETS = re.compile(r"\s*\([^()]*(?:`|\bnurture [a-z])[^()]*\)")
_HINT_SENTENCE = re.compile(r"[;,.]?\s*(?:see|run|try|use)?:?\s*`?nurture [a-z][^.;\n`]*`?", re.IGNORECASE)
_BACKTICKS = re.compile(r"`([^`]*)`")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*\s*")
_PATH = re.compile(
    r"(?:[\w.-]+/)*[\w.-]+\.(?:md|ya?ml|csv|json|txt|html|mjml)(?::\d+)?(:(?=\s))?", re.IGNORECASE
)
_SPACES = re.compile(r"[ \t]{2,}")


def in_her_words(error: BaseException | str) -> str:
    text = str(error)
    text = _HINT_IN_BRACKETS.sub("", text)
    text = _HINT_SENTENCE.sub("", text)
    text = _BACKTICKS.sub(r"\1", text)
    text = _OPTION.sub("", text)
    text = _PATH.sub(lambda found: "the file" + (found.group(1) or ""), text)
    text = _SPACES.sub(" ", text).strip(" ;,:")
    return text
