"""Versioned series (issue 11): the owner edits a live series and nobody gets an email
twice or misses one. The replays run on SQLite here and on PostgreSQL in
tests/integration/test_series_versions_postgres.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from nurture.app import App
from nurture.cli.main import cli
from nurture.errors import InputError
from nurture.reporting.report import write_report
from nurture.reporting.stats import step_stats
from nurture.series.drafts import load_draft
from nurture.series.plan import plan
from nurture.series.publish import publish
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import SECRET, active_subscribers, open_app
from tests.support.series_replay import (
    AFTER,
    EDIT_AT,
    EDITED_SUBJECT,
    EDITS,
    KEYS,
    NEW_SUBJECT,
    check_legacy_rows_adopted,
    check_replay,
    original_steps,
    replay,
    subjects_by_key,
    write_steps,
)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_an_edit_published_mid_series_sends_each_key_once_in_the_new_order(tmp_path: Path, name: str) -> None:
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    EDITS[name](state.folder)
    new = subjects_by_key(state.folder)
    plan = state.publish()
    assert plan.new_version == 2
    state.run_until(AFTER)
    check_replay(state, old, new)


def test_the_issues_three_edits_would_each_have_broken_the_old_position_rule(tmp_path: Path) -> None:
    """The expectations above are not trivially met: under the old rule (the enrollment's
    next position, read in the edited files) the insert sends step 2 twice to people who
    had it. Here the same people get the new email and never step 2 again."""
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    EDITS["insert"](state.folder)
    state.publish()
    state.run_until(AFTER)
    for subscriber_id in state.cohorts[2] + state.cohorts[3]:
        after = state.subjects_after(subscriber_id)
        assert old[KEYS[1]] not in after
        assert after[0] == NEW_SUBJECT


def test_only_ahead_lets_people_past_an_added_step_skip_it_for_good(tmp_path: Path) -> None:
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    EDITS["insert"](state.folder)
    new = subjects_by_key(state.folder)
    plan = state.publish(only_ahead=True)
    past = {had: {"02b-breathing"} for had in (2, 3, 4, 5)}
    assert plan.skipped == 2 * len(past)
    state.run_until(AFTER)
    check_replay(state, old, new, skipped=past)
    # A later publish does not bring the skipped step back: the skip is stored.
    steps = original_steps()
    write_steps(
        state.folder, [steps[0], ("02b-breathing.md", 1.0, None), *steps[1:]]
    )  # only its delay changes
    assert state.publish().new_version == 3
    state.run_until(AFTER + timedelta(days=30))
    for had in past:
        for subscriber_id in state.cohorts[had]:
            assert NEW_SUBJECT not in state.subjects_after(subscriber_id)


def test_the_plan_names_each_change_and_who_it_affects(tmp_path: Path) -> None:
    state = replay(tmp_path)
    EDITS["insert"](state.folder)
    shown = plan(state.app, load_draft(state.app.config, "kap-intro"))
    assert [(impact.change.kind, impact.change.key, impact.affected) for impact in shown.impacts] == [
        ("added", "02b-breathing", 12)
    ]
    assert shown.impacts[0].groups == ("12 people get it (10 of them as their next email)",)
    new = repr(NEW_SUBJECT) + " [02b-breathing]"
    old = subjects_by_key(state.folder)
    assert sorted(shown.next_moves) == sorted(
        [
            (2, f"{old[KEYS[1]]!r} [{KEYS[1]}]", new),
            (2, f"{old[KEYS[2]]!r} [{KEYS[2]}]", new),
            (2, f"{old[KEYS[3]]!r} [{KEYS[3]}]", new),
            (2, f"{old[KEYS[4]]!r} [{KEYS[4]}]", new),
            (2, "nothing (finished the series)", new),
        ]
    )
    text = "\n".join(shown.lines())
    assert "kap-intro: version 1 -> 2; 12 people in the series" in text
    assert "Rule for people mid-series" in text
    # Nothing was written: the plan is only a plan.
    assert state.app.campaigns["kap-intro"].version == 1
    with pytest.raises(InputError, match="nothing to publish"):
        EDITS["remove"](state.folder)
        write_steps(state.folder, original_steps())
        state.publish()


def test_a_renamed_file_is_the_same_email_only_when_it_keeps_its_key(tmp_path: Path) -> None:
    state = replay(tmp_path)
    EDITS["rename-without-key"](state.folder)
    shown = plan(state.app, load_draft(state.app.config, "kap-intro"))
    assert [(impact.change.kind, impact.change.key, impact.affected) for impact in shown.impacts] == [
        ("removed", "03-is-kap-safe", 6),  # the two people each who had 0, 1 or 2 emails have not had it
        ("added", "03-safety", 12),
    ]
    assert "add `key: 03-is-kap-safe` to this step" in shown.impacts[1].change.detail

    (state.folder / "03-safety.md").rename(state.folder / "03-is-kap-safe.md")
    EDITS["rename-keeping-key"](state.folder)
    shown = plan(state.app, load_draft(state.app.config, "kap-intro"))
    assert [(impact.change.kind, impact.change.key) for impact in shown.impacts] == [
        ("renamed", "03-is-kap-safe")
    ]
    assert shown.next_moves == []


def test_an_edited_subject_keeps_past_sends_under_their_own_subject_in_stats(tmp_path: Path) -> None:
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    EDITS["edit"](state.folder)
    state.publish()
    state.run_until(AFTER)
    rows = [row for row in step_stats(state.app) if row.stream == "kap-intro" and row.key == KEYS[1]]
    by_subject = {row.subject: row.sent for row in rows}
    # Had step 2 before the edit: cohorts 2-5 (8 people); after it: cohorts 0 and 1 (4 people).
    assert by_subject == {EDITED_SUBJECT: 4, old[KEYS[1]]: 8}


# ---------------------------------------------------------------- drafts never go out


def nurture(app: App, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["--config", str(app.config.path), *args], env={"NURTURE_SECRET_KEY": SECRET}, input=stdin
    )
    return result.exit_code, result.output


def test_a_broken_draft_never_stops_or_changes_what_goes_out_and_check_names_it(tmp_path: Path) -> None:
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    # Half-saved: the front matter of step 3 is broken, and step 2 was edited but not published.
    safe = state.folder / "03-is-kap-safe.md"
    safe.write_text("---\nsubject: [unclosed\n", encoding="utf-8")
    EDITS["edit"](state.folder)
    state.run_until(EDIT_AT + timedelta(days=30))
    for ids in state.cohorts.values():
        for subscriber_id in ids:
            assert state.subjects_before(subscriber_id) + state.subjects_after(subscriber_id) == [
                old[key] for key in KEYS
            ]
    code, output = nurture(state.app, "check")
    assert code == 1 and f"{safe}:1: front matter is not closed" in output
    code, output = nurture(state.app, "campaign", "publish", "kap-intro", "--yes")
    assert code == 1 and "03-is-kap-safe.md" in output and "Traceback" not in output
    assert state.app.campaigns["kap-intro"].version == 1


def test_publish_refuses_any_check_finding_and_keeps_the_live_version(tmp_path: Path) -> None:
    state = replay(tmp_path)
    path = state.folder / "02-the-neuroscience.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("\n---\n", "\n---\nSee http://example.com for more.\n", 1),
        encoding="utf-8",
    )
    code, output = nurture(state.app, "campaign", "publish", "kap-intro", "--yes")
    assert code == 1
    assert "02-the-neuroscience.md" in output and "http://" in output
    assert "kap-intro was not published: " in output and "version 1 stays live" in output


def test_publish_shows_the_plan_asks_and_diff_changes_nothing(tmp_path: Path) -> None:
    state = replay(tmp_path)
    EDITS["remove"](state.folder)
    code, output = nurture(state.app, "campaign", "diff", "kap-intro")
    assert (
        code == 0
        and "removed" in output
        and "02-the-neuroscience" in output
        and "Rule for people mid-series" in output
    )
    code, output = nurture(state.app, "campaign", "publish", "kap-intro", stdin="n\n")
    assert code == 1 and "version 1 -> 2" in output and "not published; version 1 stays live" in output
    assert state.app.catalog.refresh(state.app.engine)["kap-intro"].version == 1
    code, output = nurture(
        state.app, "campaign", "publish", "kap-intro", "--now", EDIT_AT.isoformat(), stdin="y\n"
    )
    assert code == 0 and "published kap-intro version 2" in output
    code, output = nurture(state.app, "campaign", "publish", "kap-intro", "--yes")
    assert code == 0 and "the files match version 2; nothing to publish" in output
    code, output = nurture(state.app, "campaign", "publish", "no-such-series", "--yes")
    assert code != 0 and "no series folder" in output and "kap-intro" in output


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    state = replay(tmp_path)
    steps = original_steps()
    steps[2] = (steps[2][0], steps[2][1], "02-the-neuroscience")
    write_steps(state.folder, steps)
    code, output = nurture(state.app, "check")
    assert (
        code == 1
        and "campaign.yaml:" in output
        and "the key '02-the-neuroscience' is already used by steps[2]" in output
    )


def test_rows_from_before_step_keys_are_adopted_by_version_1(tmp_path: Path) -> None:
    check_legacy_rows_adopted(tmp_path, f"sqlite:///{tmp_path / 'legacy.db'}")


def test_the_report_names_past_sends_by_the_subject_they_went_out_with(tmp_path: Path) -> None:
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    EDITS["edit"](state.folder)  # step 2's subject changes...
    steps = original_steps()
    write_steps(state.folder, [*steps[:2], *steps[3:]])  # ...and step 3 is removed
    state.publish()
    state.run_until(AFTER)
    rows = {
        (row.key, row.subject): (row.sent, row.note)
        for row in step_stats(state.app)
        if row.stream == "kap-intro"
    }
    assert rows[(KEYS[1], EDITED_SUBJECT)] == (4, "")  # had 0 or 1 email at the edit
    assert rows[(KEYS[1], old[KEYS[1]])] == (8, "earlier subject")
    assert rows[(KEYS[2], old[KEYS[2]])] == (6, "removed")  # had 3, 4 or 5 emails
    page = write_report(state.app, tmp_path / "report.html", now=AFTER).read_text(encoding="utf-8")
    assert f"2. {EDITED_SUBJECT}" in page
    assert f"{old[KEYS[1]]} (earlier subject)" in page and f"{old[KEYS[2]]} (removed)" in page


def test_an_enrollment_made_from_an_older_version_is_placed_in_the_latest(tmp_path: Path) -> None:
    """A process that had not seen a publish yet enrolled someone at version 1's first step,
    which version 2 removed: the pass places them in version 2 and never sends it."""
    state = replay(tmp_path)
    old = subjects_by_key(state.folder)
    steps = original_steps()
    write_steps(state.folder, steps[1:])
    new = subjects_by_key(state.folder)
    state.publish()
    late = active_subscribers(state.app, 1, state.clock, prefix="late")[0]
    with transaction(state.app.engine) as session:
        enrollment = session.scalars(select(m.Enrollment).where(m.Enrollment.subscriber_id == late)).one()
        assert (enrollment.version, enrollment.next_step_key) == (
            2,
            KEYS[1],
        )  # enrolling reads the latest version...
        enrollment.version, enrollment.next_step, enrollment.next_step_key = (
            1,
            1,
            KEYS[0],
        )  # ...a stale process did not
    state.emails[late] = "late0@example.com"
    state.run_until(AFTER)
    received = state.subjects_after(late)
    assert old[KEYS[0]] not in received
    assert received == [new[key] for key in KEYS[1:]]


def test_a_running_process_sends_from_a_version_another_process_published(tmp_path: Path) -> None:
    """`nurture run` keeps one App for days: each pass reads which version is the latest."""
    state = replay(tmp_path)  # state.app plays the long-running `nurture run`
    assert state.app.campaigns["kap-intro"].version == 1
    owner = open_app(state.app.config)  # the owner's `nurture campaign publish`, another process
    EDITS["edit"](state.folder)
    publish(owner, load_draft(owner.config, "kap-intro"), state.clock)
    state.published = True
    state.run_until(AFTER)
    for subscriber_id in state.cohorts[0] + state.cohorts[1]:
        assert EDITED_SUBJECT in state.subjects_after(subscriber_id)
    assert state.app.campaigns["kap-intro"].version == 2


def test_an_unusable_key_is_refused_with_its_line(tmp_path: Path) -> None:
    state = replay(tmp_path)
    steps = original_steps()
    steps[1] = (steps[1][0], steps[1][1], "#2")
    write_steps(state.folder, steps)
    code, output = nurture(state.app, "check")
    assert code == 1 and "campaign.yaml:" in output and "steps[2].key: '#2' is not a usable key" in output
