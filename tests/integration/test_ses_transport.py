"""SesTransport through boto3's own sesv2 client over real HTTP to the SES v2 stand-in
(tests/support/ses_standin.py; moto's SES v2 keeps neither tags nor headers, and has no
GetAccount). Credentials come from the environment, the endpoint from AWS_ENDPOINT_URL_SESV2."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Sender, StoppedMidBatch
from nurture.providers.ses.transport import SesTransport
from tests.support.aws import CONFIGURATION_SET, REGION
from tests.support.ses_standin import SesStandIn


def envelope(i: int) -> Envelope:
    return Envelope(
        delivery_id=str(1000 + i),
        to_email=f"reader{i}@example.com",
        to_name=f"Reader {i}",
        subject="Week 1",
        headers={
            "List-Unsubscribe": f"<https://example.org/u/tok{i}>, <mailto:unsub@example.org?subject=tok{i}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        substitutions={"-first_name-": f"Name{i}", "-unsub_url-": f"https://example.org/u/tok{i}"},
        custom_args={"delivery_id": str(1000 + i), "step": "1"},
        stream="kap-intro",
        step=1,
    )


def batch(n: int, start: int = 0) -> Batch:
    return Batch(
        sender=Sender("clinic@example.org", "The Clinic", reply_to="hello@example.org"),
        text="Hello -first_name-, unsubscribe: -unsub_url-",
        html='<p>Hello -first_name-</p><a href="-unsub_url-">unsubscribe</a>',
        envelopes=[envelope(i) for i in range(start, start + n)],
        categories=("nurture",),
    )


def transport(**kw: Any) -> SesTransport:
    values: dict[str, Any] = {
        "region": REGION,
        "configuration_set": CONFIGURATION_SET,
        "timeout": 5.0,
        "workers": 16,
        "backoff_base": 0.02,
    }
    values.update(kw)
    return SesTransport(**values)


def test_a_thousand_emails_go_once_each_with_tag_configuration_set_and_headers(ses: SesStandIn) -> None:
    ses.max_send_rate = 400
    sender = transport()
    outcomes = sender.send(batch(500)) + sender.send(batch(500, start=500))
    sender.close()

    assert Counter(o.status for o in outcomes) == Counter({"sent": 1000})
    assert len({o.provider_message_id for o in outcomes}) == 1000
    messages = ses.messages()
    assert len(messages) == 1000
    assert Counter(m.to_email for m in messages) == Counter(
        {f"reader{i}@example.com": 1 for i in range(1000)}
    )
    assert ses.account_reads == 1, "the account is read once, not per batch"
    by_id = {o.delivery_id: o.provider_message_id for o in outcomes}
    for message in messages:
        i = int(message.to_email.removeprefix("reader").split("@")[0])
        # Only the opaque delivery id travels as a tag; stream and step stay home.
        assert message.tags == {"delivery_id": str(1000 + i)}
        assert by_id[str(1000 + i)] == message.message_id
        assert message.configuration_set == CONFIGURATION_SET
        assert message.headers == {
            "List-Unsubscribe": f"<https://example.org/u/tok{i}>, <mailto:unsub@example.org?subject=tok{i}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert message.reply_to == ["hello@example.org"]
        assert message.from_header == "The Clinic <clinic@example.org>"
        assert message.to_header == f"Reader {i} <reader{i}@example.com>"
        assert message.raw_subject == "Week 1"
        assert message.text == f"Hello Name{i}, unsubscribe: https://example.org/u/tok{i}"
        assert message.html == f'<p>Hello Name{i}</p><a href="https://example.org/u/tok{i}">unsubscribe</a>'


def test_throttling_backs_off_and_every_email_still_goes_once(ses: SesStandIn) -> None:
    # The account says 100 a second, SES holds the line at 10: throttled calls wait and retry.
    ses.max_send_rate = 100
    ses.enforced_rate = 10
    sender = transport(max_retries=12)
    outcomes = sender.send(batch(41))
    sender.close()
    assert ses.throttled > 0, "SES did throttle"
    assert Counter(o.status for o in outcomes) == Counter({"sent": 41})
    assert set(Counter(m.to_email for m in ses.messages()).values()) == {1}


def test_throttled_to_the_end_fails_without_sending(ses: SesStandIn) -> None:
    ses.enforced_rate = 0
    outcomes = transport(max_retries=2).send(batch(2))
    assert {o.status for o in outcomes} == {"failed"}
    assert "TooManyRequestsException" in (outcomes[0].error or "")
    assert ses.messages() == []


def test_a_rejected_message_fails_alone(ses: SesStandIn) -> None:
    ses.rejected_recipients = {"reader3@example.com"}
    outcomes = {o.delivery_id: o for o in transport().send(batch(6))}
    assert outcomes["1003"].status == "failed"
    assert "MessageRejected" in (outcomes["1003"].error or "")
    assert "reader3" not in (outcomes["1003"].error or ""), "no address in the error"
    assert {o.status for key, o in outcomes.items() if key != "1003"} == {"sent"}


def test_a_cut_connection_after_the_request_is_unknown(ses: SesStandIn) -> None:
    ses.drop_connection_for = {"reader1@example.com"}
    outcomes = {o.delivery_id: o for o in transport().send(batch(3))}
    assert outcomes["1001"].status == "unknown"
    assert outcomes["1000"].status == outcomes["1002"].status == "sent"


def test_a_sandbox_account_stops_before_anything_goes(ses: SesStandIn) -> None:
    ses.production = False
    with pytest.raises(FatalTransportError, match="sandbox") as caught:
        transport().send(batch(3))
    assert "production access" in str(caught.value)
    assert ses.request_count == 0


def test_a_paused_account_stops_before_anything_goes(ses: SesStandIn) -> None:
    ses.sending_enabled = False
    with pytest.raises(FatalTransportError, match="paused"):
        transport().send(batch(3))
    assert ses.request_count == 0


def test_pausing_mid_batch_reports_what_went_and_stops_the_rest(ses: SesStandIn) -> None:
    ses.pause_after = 5
    sender = transport(workers=2)
    with pytest.raises(StoppedMidBatch, match="SendingPausedException") as caught:
        sender.send(batch(30))
    handed = caught.value.outcomes
    sent = [o for o in handed if o.status == "sent"]
    assert len(sent) == len(ses.messages()) >= 5
    assert all(o.status == "sent" for o in handed), "the rest were never handed over: no outcome"
    assert len(handed) < 30
    # The transport stays stopped: the next batch sends nothing.
    before = ses.request_count
    with pytest.raises(FatalTransportError):
        sender.send(batch(3, start=100))
    assert ses.request_count == before


def test_an_unknown_configuration_set_stops_the_pass(ses: SesStandIn) -> None:
    with pytest.raises(FatalTransportError, match="configuration set"):
        transport(configuration_set="no-such-set").send(batch(2))


def test_missing_credentials_stop_with_what_to_do(ses: SesStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(FatalTransportError, match="no AWS credentials") as caught:
        transport().send(batch(1))
    assert "config.yaml" in str(caught.value)
    assert ses.request_count == 0
