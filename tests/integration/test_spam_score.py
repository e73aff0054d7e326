"""Every email scores 0 or below with SpamAssassin (Debian's package, local rules only).

`spamassassin -L -t` runs the local tests (no DNS blocklists, no DKIM credit: the
outbox signs nothing) and reports the score. The confirmation, every series step
and every newsletter under campaigns/newsletters are checked as complete MIME
messages, exactly as the outbox writes them.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import pytest

from nurture.providers.outbox import POLICY
from tests.support.every_email import Message, every_email
from tests.support.factories import make_config

HINT = "apt-get install -y spamassassin (Debian), then run the tests again"
SCORE = re.compile(rb"^X-Spam-Status: \w+, score=(-?\d+(?:\.\d+)?)", re.MULTILINE)
RULES = re.compile(rb"^X-Spam-Status:.*?tests=(.*?)\s+autolearn", re.MULTILINE | re.DOTALL)


def spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"spamassassin is not installed in CI: {HINT}", pytrace=False)
    pytest.skip(f"spamassassin is not installed -- to run this test: {HINT}")


def score(program: str, message: Message) -> tuple[float, str]:
    done = subprocess.run(
        [program, "-L", "-t"], input=message.data, capture_output=True, timeout=120, check=True
    )
    found = SCORE.search(done.stdout)
    stderr = done.stderr.decode(errors="replace")[:300]
    assert found, f"{message.name}: no X-Spam-Status in spamassassin's answer: {stderr}"
    rules = RULES.search(done.stdout)
    return float(found.group(1)), " ".join(rules.group(1).decode().split()) if rules else ""


def test_every_email_scores_zero_or_below(tmp_path):
    program = spamassassin()
    messages = every_email(make_config(tmp_path))
    names = [message.name for message in messages]
    assert "confirmation" in names and any(name.startswith("newsletters/") for name in names)
    assert sum(name.startswith("kap-intro/") for name in names) == 5
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda message: score(program, message), messages))
    over = {name: result for name, result in zip(names, results, strict=True) if result[0] > 0}
    assert not over, f"spamassassin scores above 0 (score, rules hit): {over}"


def test_the_check_catches_a_hidden_preheader(tmp_path):
    """The old, hidden same-colour preheader scored above 0: the test can fail."""
    program = spamassassin()
    [message] = [m for m in every_email(make_config(tmp_path)) if m.name == "confirmation"]
    hidden = (
        '<div style="display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;'
        'max-width:0px;opacity:0;overflow:hidden;">'
        + "Confirm now and see what is inside for you. " * 8
        + "</div>"
    )
    parsed = email.message_from_bytes(message.data, policy=POLICY)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("html",))
    assert part is not None
    html = part.get_content()
    opened = html.index(">", html.index("<body")) + 1
    part.set_content(html[:opened] + hidden + html[opened:], subtype="html", cte="quoted-printable")
    data = parsed.as_bytes()
    value, rules = score(program, Message("hidden preheader", data))
    assert value > 0, f"a hidden same-colour block should cost points; rules hit: {rules}"
