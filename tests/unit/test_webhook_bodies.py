"""A webhook body Python's own parsing would trip on (deep nesting, broken JSON) and custom
args that are not plain numbers in range: each read or refused in memory, nothing stored."""

from __future__ import annotations

import json

import pytest

from nurture.errors import WebhookRejected
from nurture.providers.sendgrid import batch
from nurture.providers.sendgrid import event_webhook as wh
from tests.support.webserver import sg_event


def test_nesting_is_bounded_at_max_nesting_levels():
    limit = batch.MAX_NESTING
    inside = "[" * (limit - 1) + "]" * (limit - 1)  # with the batch's own array: exactly the limit
    assert batch.nesting_depth("[" + inside + "]") == limit
    assert batch.parse_batch("[" + inside + "]") == json.loads("[" + inside + "]")
    over = "[" + inside + "]"
    assert batch.parse_batch(f"[{over}, 1]") == [batch.TOO_DEEP, 1]
    # Brackets inside strings are text, not nesting.
    text = json.dumps(["[" * 500 + '\\"{' * 500])
    assert batch.nesting_depth(text) == 1 and batch.parse_batch(text) == json.loads(text)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "{}",
        "[",
        "]",
        "[1,]",
        "[,1]",
        "[1]]",
        "[1] x",
        '"[[["',
        "[" * 40 + "]" * 39,
        "[" * 40 + "]" * 41,
        '{"a":' + "[" * 40,
    ],
)
def test_a_broken_or_non_array_body_is_a_bad_request_at_any_depth(body):
    with pytest.raises(WebhookRejected) as caught:
        batch.parse_batch(body)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("fields", "step", "delivery_ref"),
    [
        ({"step": "²", "delivery_id": "²"}, None, None),
        ({"step": "\u0663", "delivery_id": "\uff11"}, None, None),
        ({"step": str(2**31), "delivery_id": str(2**63)}, None, None),
        ({"step": 2**31 - 1, "delivery_id": 2**63 - 1}, 2**31 - 1, str(2**63 - 1)),
    ],
)
def test_custom_args_that_are_not_plain_numbers_in_range_are_dropped(fields, step, delivery_ref):
    event = wh.normalize(sg_event("open", 1, **fields), "k" * 32)
    assert (event.step, event.delivery_ref) == (step, delivery_ref)
