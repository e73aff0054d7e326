"""config.yaml files written out line by line, so a test knows the exact line a mistake
sits on, and the one ConfigError that loading such a file must raise."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.config import load_config
from nurture.errors import ConfigError
from tests.support.factories import SECRET

VALID = """\
practice:
  name: Riverbend Integrative Therapy
  postal_address: 120 Example Street, Portland, OR 97201, USA
  website: https://www.example.com/articles
  booking_url: https://www.example.com/book
  reply_to: hello@example.com
sender:
  from_email: hello@example.com
  from_name: Riverbend Integrative Therapy
delivery:
  transport: outbox
  outbox_dir: outbox
  batch_size: 500
  send_window:
    start: "09:00"
    end: "17:00"
  weekdays_only: false
  default_timezone: America/Los_Angeles
database:
  url: sqlite:///nurture.db
web:
  public_base_url: https://mail.example.com
consent:
  version: "v1"
  wording: Yes, send me emails about KAP. I can unsubscribe at any time.
"""


def line_of(text: str, needle: str) -> int:
    """1-based number of the only line containing needle."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def project(tmp_path: Path, text: str = VALID, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str) -> tuple[str, int]:
    """VALID with one line's text replaced; returns the text and that line's number."""
    assert VALID.count(old) == 1, old
    text = VALID.replace(old, new)
    return text, line_of(text, new.strip().splitlines()[0])


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    env = {"NURTURE_SECRET_KEY": SECRET, **(environ or {})}
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=env)
    assert caught.value.exit_code == 2
    return str(caught.value)
