"""What the pass does with one due row: the rule alone, with no database.

The claim code reads the facts for a row (its subscriber's zone, the daily cap, the
stop tags, the campaign's state), asks `decide()`, and writes the answer. Keeping
the rule here lets a plain table of cases test it.
"""

from __future__ import annotations

from enum import StrEnum


class Decision(StrEnum):
    CLAIM = "claim"  # send it in this pass
    WAIT_FOR_WINDOW = "wait for window"  # due outside the send window: the window's next opening
    NEXT_DAY = "next day"  # daily cap reached: the window's opening on the next local day
    STOP = "stop"  # the series ends for this person (unsubscribed, goal tag, series removed)
    COMPLETE = "complete"  # no step left: the series is done
    HOLD = "hold"  # campaign paused: left as it is until resumed
    NOT_YET = "not yet"  # not due yet where this person lives


def decide(
    *,
    paused: bool,
    due: bool,
    series_exists: bool,
    subscribed: bool,
    stop_tag: bool,
    steps_left: bool,
    in_window: bool,
    cap_full: bool,
) -> Decision:
    """The fate of one due row; earlier rules win (a paused series holds even an unsubscribed
    person's row)."""
    if paused:
        return Decision.HOLD
    if not due:
        return Decision.NOT_YET
    if not series_exists or not subscribed or stop_tag:
        return Decision.STOP
    if not steps_left:
        return Decision.COMPLETE
    if not in_window:
        return Decision.WAIT_FOR_WINDOW
    if cap_full:
        return Decision.NEXT_DAY
    return Decision.CLAIM
