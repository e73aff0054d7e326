"""How settings saved in the console are laid over config.yaml (nurture.config.overrides):
the environment wins over both, a value that does not validate falls back to the file's
with the reason, and a wording never goes without its version."""

from __future__ import annotations

from datetime import time

import pytest

from nurture.config.overrides import ORIGIN, apply_saved, set_by_environment
from tests.support.factories import memory_config

pytestmark = pytest.mark.unit


def test_saved_values_are_laid_over_the_file_and_say_where_they_came_from():
    base = memory_config()
    applied = apply_saved(base, {"delivery.send_window.start": "08:30", "sender.from_name": "Anna"})
    assert applied.problems == []
    assert applied.config.delivery.send_window.start == time(8, 30)
    assert applied.config.sender.from_name == "Anna"
    assert applied.config.delivery.send_window.end == base.delivery.send_window.end
    assert applied.config.where("sender", "from_name") == ORIGIN
    assert base.sender.from_name != "Anna"  # the file's config is left as it was


def test_the_environment_wins_over_a_saved_value():
    # (memory_config applies the variable's value itself; load_config would do the same.)
    base = memory_config(
        environ={"NURTURE_DELIVERY__MAX_EMAILS_PER_DAY": "3"}, **{"delivery.max_emails_per_day": 3}
    )
    assert set_by_environment(base, "delivery.max_emails_per_day") == "NURTURE_DELIVERY__MAX_EMAILS_PER_DAY"
    applied = apply_saved(base, {"delivery.max_emails_per_day": 5})
    assert applied.config.delivery.max_emails_per_day == 3 and applied.used == {}


def test_a_value_that_does_not_validate_falls_back_and_the_rest_still_apply():
    base = memory_config()
    applied = apply_saved(
        base,
        {
            "delivery.default_timezone": "Mars/Base",
            "sender.from_email": "nope",
            "delivery.weekdays_only": True,
        },
    )
    assert applied.config.delivery.default_timezone == base.delivery.default_timezone
    assert applied.config.sender.from_email == base.sender.from_email
    assert applied.config.delivery.weekdays_only is True
    assert {problem.key for problem in applied.problems} == {"delivery.default_timezone", "sender.from_email"}
    assert "Mars/Base" not in " ".join(problem.brief() for problem in applied.problems)


def test_a_window_the_file_now_makes_impossible_drops_the_saved_half():
    base = memory_config(**{"delivery.send_window.start": "09:00", "delivery.send_window.end": "17:00"})
    applied = apply_saved(base, {"delivery.send_window.end": "08:00"})
    assert applied.config.delivery.send_window.end == time(17, 0)
    assert [problem.key for problem in applied.problems] == ["delivery.send_window.end"]
    assert "must be later than start" in str(applied.problems[0])


def test_a_wording_without_its_version_is_not_used_and_unknown_keys_are_ignored():
    base = memory_config()
    applied = apply_saved(base, {"consent.wording": "Other words entirely, never versioned.", "web.port": 1})
    assert applied.config.consent == base.consent
    assert {problem.key for problem in applied.problems} == {"consent.version", "web.port"}
    both = apply_saved(base, {"consent.wording": "Other words entirely.", "consent.version": "v9"})
    assert (both.config.consent.version, both.problems) == ("v9", [])
