"""The per-row claim rule, as a table: the facts about one due row -> what the pass does with it."""

from __future__ import annotations

import itertools

import pytest

from nurture.sending.decision import Decision, decide

FACTS = ("paused", "due", "series_exists", "subscribed", "stop_tag", "steps_left", "in_window", "cap_full")
# The facts of a row nothing stands in the way of.
CLEAR = {
    "paused": False,
    "due": True,
    "series_exists": True,
    "subscribed": True,
    "stop_tag": False,
    "steps_left": True,
    "in_window": True,
    "cap_full": False,
}

Y, N = True, False


@pytest.mark.parametrize(
    (
        "paused",
        "due",
        "series_exists",
        "subscribed",
        "stop_tag",
        "steps_left",
        "in_window",
        "cap_full",
        "expected",
    ),
    [
        # paused due    series subscr stoptag left   window cap_full
        (N, Y, Y, Y, N, Y, Y, N, Decision.CLAIM),
        (N, Y, Y, Y, N, Y, N, N, Decision.WAIT_FOR_WINDOW),
        (N, Y, Y, Y, N, Y, Y, Y, Decision.NEXT_DAY),
        # Outside the window and over the cap: the window comes first (the cap is counted
        # per local day there).
        (N, Y, Y, Y, N, Y, N, Y, Decision.WAIT_FOR_WINDOW),
        (N, Y, Y, Y, Y, Y, Y, N, Decision.STOP),  # a goal tag such as "booked"
        (N, Y, Y, N, N, Y, Y, N, Decision.STOP),  # unsubscribed or bounced
        (N, Y, N, Y, N, Y, Y, N, Decision.STOP),  # the campaign was removed from campaigns/
        (N, Y, Y, Y, N, N, Y, N, Decision.COMPLETE),
        # A stop beats everything after it: an unsubscribed person is not rescheduled.
        (N, Y, Y, N, N, Y, N, Y, Decision.STOP),
        (N, Y, Y, Y, Y, N, Y, N, Decision.STOP),
        # No step left beats the window and the cap: nothing is left to wait for.
        (N, Y, Y, Y, N, N, N, Y, Decision.COMPLETE),
        # A paused campaign holds its rows as they are, whatever else is true.
        (Y, Y, Y, Y, N, Y, Y, N, Decision.HOLD),
        (Y, Y, Y, N, Y, N, N, Y, Decision.HOLD),
        (Y, N, Y, Y, N, Y, Y, N, Decision.HOLD),
        # Not due yet where the person lives (a newsletter at a local hour): nothing happens.
        (N, N, Y, Y, N, Y, Y, N, Decision.NOT_YET),
        (N, N, Y, N, Y, N, N, Y, Decision.NOT_YET),
    ],
)
def test_decision_table(
    paused: bool,
    due: bool,
    series_exists: bool,
    subscribed: bool,
    stop_tag: bool,
    steps_left: bool,
    in_window: bool,
    cap_full: bool,
    expected: Decision,
) -> None:
    decision = decide(
        paused=paused,
        due=due,
        series_exists=series_exists,
        subscribed=subscribed,
        stop_tag=stop_tag,
        steps_left=steps_left,
        in_window=in_window,
        cap_full=cap_full,
    )
    assert decision is expected


@pytest.mark.parametrize("values", list(itertools.product([False, True], repeat=len(FACTS))))
def test_claims_only_when_nothing_stands_in_the_way(values: tuple[bool, ...]) -> None:
    facts = dict(zip(FACTS, values, strict=True))
    assert (decide(**facts) is Decision.CLAIM) == (facts == CLEAR)
