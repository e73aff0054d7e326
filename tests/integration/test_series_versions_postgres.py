"""Versioned series on PostgreSQL: the same replays as tests/integration/test_series_versions.py
(insert, remove, reorder, edit, delay, renames; --only-ahead; rows from before keys)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.series_replay import (
    AFTER,
    EDITS,
    check_legacy_rows_adopted,
    check_replay,
    replay,
    subjects_by_key,
)

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("name", sorted(EDITS))
def test_an_edit_published_mid_series_sends_each_key_once_on_postgresql(
    tmp_path: Path, postgres_url: str, name: str
) -> None:
    state = replay(tmp_path, postgres_url)
    old = subjects_by_key(state.folder)
    EDITS[name](state.folder)
    new = subjects_by_key(state.folder)
    state.publish()
    state.run_until(AFTER)
    check_replay(state, old, new)


def test_only_ahead_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    state = replay(tmp_path, postgres_url)
    old = subjects_by_key(state.folder)
    EDITS["insert"](state.folder)
    new = subjects_by_key(state.folder)
    assert state.publish(only_ahead=True).skipped == 8
    state.run_until(AFTER)
    check_replay(state, old, new, skipped={had: {"02b-breathing"} for had in (2, 3, 4, 5)})


def test_rows_from_before_step_keys_are_adopted_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    check_legacy_rows_adopted(tmp_path, postgres_url)
