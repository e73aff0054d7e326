"""SendGridTransport against a real local HTTP stand-in, and the stand-in itself.

The transport uses the real `sendgrid` library over real HTTP; only the server is ours.
Waits are recorded through the injected `sleep`, so nothing here really sleeps
except the read-timeout test (a fraction of a second).
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from nurture.errors import FatalTransportError
from nurture.providers.base import Batch, Envelope, Sender
from nurture.providers.sendgrid.transport import SendGridTransport, build_request_body
from tests.support.sendgrid_standin import RESERVED_HEADERS, SendGridStandIn

KEY = "SG.test-key-123"
FORBIDDEN = "SG.forbidden-key"
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with SendGridStandIn(api_key=KEY, forbidden_key=FORBIDDEN) as sg:
        yield sg


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def transport(standin: SendGridStandIn, sleeps: list[float]):
    t = SendGridTransport(KEY, host=standin.url, timeout=5.0, sleep=sleeps.append)
    yield t
    t.close()


def envelope(i: int, **overrides: Any) -> Envelope:
    values: dict[str, Any] = dict(
        delivery_id=f"d{i}",
        to_email=f"reader{i}@example.com",
        to_name=f"Reader {i}",
        subject="Week 1, -first_name-",
        headers={
            "List-Unsubscribe": f"<https://example.org/u/tok{i}>, <mailto:unsub@example.org?subject=tok{i}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        substitutions={"-first_name-": f"Name{i}", "-unsub_url-": f"https://example.org/u/tok{i}"},
        custom_args={"delivery_id": f"d{i}", "step": "1"},
    )
    values.update(overrides)
    return Envelope(**values)


def batch(n: int = 3, *, start: int = 0, **kw: Any) -> Batch:
    values: dict[str, Any] = dict(
        sender=Sender("clinic@example.org", "The Clinic", reply_to="hello@example.org"),
        text="Hello -first_name-, unsubscribe: -unsub_url-",
        html='<p>Hello -first_name-</p><a href="-unsub_url-">unsubscribe</a>',
        envelopes=[envelope(i) for i in range(start, start + n)],
        categories=("nurture", "week-1"),
    )
    values.update(kw)
    return Batch(**values)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- request contents


def test_one_request_per_batch_with_one_personalization_per_envelope(standin, transport):
    outcomes = transport.send(batch(3))

    assert standin.request_count == 1
    [request] = standin.requests
    assert request.status == 202 and request.delivered
    assert {o.delivery_id for o in outcomes} == {"d0", "d1", "d2"}
    assert all(o.status == "sent" and o.provider_message_id == request.message_id for o in outcomes)
    assert request.message_id

    body = request.body
    assert body["from"] == {"email": "clinic@example.org", "name": "The Clinic"}
    assert body["reply_to"] == {"email": "hello@example.org"}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["nurture", "week-1"]
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
        "subscription_tracking": {"enable": False},
    }
    assert "mail_settings" not in body
    # What every envelope has alike is sent once, at the top: SendGrid applies it to each.
    assert body["subject"] == "Week 1, -first_name-"
    assert body["headers"] == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    assert len(body["personalizations"]) == 3
    p = body["personalizations"][1]
    assert p["to"] == [{"email": "reader1@example.com", "name": "Reader 1"}]
    assert "subject" not in p
    assert p["headers"] == {
        "List-Unsubscribe": "<https://example.org/u/tok1>, <mailto:unsub@example.org?subject=tok1>"
    }
    message = standin.messages()[1]
    assert message.raw_subject == "Week 1, -first_name-"
    assert message.headers == {
        "List-Unsubscribe": "<https://example.org/u/tok1>, <mailto:unsub@example.org?subject=tok1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert p["substitutions"] == {"-first_name-": "Name1", "-unsub_url-": "https://example.org/u/tok1"}
    assert p["custom_args"] == {"delivery_id": "d1"}  # "step" stays home: opaque ids only
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers


def test_messages_carry_applied_substitutions(standin, transport):
    transport.send(batch(2))
    messages = sorted(standin.messages(), key=lambda m: m.to_email)
    assert [m.to_email for m in messages] == ["reader0@example.com", "reader1@example.com"]
    m = messages[1]
    assert m.subject == "Week 1, Name1"
    assert m.text == "Hello Name1, unsubscribe: https://example.org/u/tok1"
    assert m.html == '<p>Hello Name1</p><a href="https://example.org/u/tok1">unsubscribe</a>'
    assert m.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert m.custom_args == {"delivery_id": "d1"}
    assert m.message_id == standin.requests[0].message_id
    assert m.from_email == "clinic@example.org" and m.reply_to == "hello@example.org"


def test_custom_args_values_are_sent_as_strings(standin, transport):
    env = envelope(0, custom_args={"delivery_id": 42, "step": 3, "flag": True}, to_name=None)
    [outcome] = transport.send(batch(envelopes=[env]))
    assert outcome.status == "sent"
    p = standin.requests[0].body["personalizations"][0]
    assert p["custom_args"] == {"delivery_id": "42"}
    assert p["to"] == [{"email": "reader0@example.com"}]  # no name key when there is no name


def test_minimal_batch_has_no_optional_fields(standin, transport):
    env = Envelope(delivery_id="x", to_email="a@example.com", to_name=None, subject="Hi")
    b = Batch(sender=Sender("clinic@example.org", ""), text="t", html="<p>h</p>", envelopes=[env])
    [outcome] = transport.send(b)
    assert outcome.status == "sent"
    body = standin.requests[0].body
    assert body["from"] == {"email": "clinic@example.org"}
    assert "reply_to" not in body and "categories" not in body
    assert body["personalizations"] == [{"to": [{"email": "a@example.com"}]}]
    assert body["subject"] == "Hi" and "headers" not in body


def test_a_full_batch_of_1000_is_one_request(standin, transport):
    outcomes = transport.send(batch(1000))
    assert standin.request_count == 1
    assert len(outcomes) == 1000 and {o.status for o in outcomes} == {"sent"}
    assert len(standin.messages()) == 1000


def test_more_than_1000_envelopes_is_refused_before_sending(standin, transport):
    with pytest.raises(ValueError, match="at most 1000"):
        transport.send(batch(1001))
    assert standin.request_count == 0


def test_duplicate_address_is_refused_before_sending_without_naming_it(standin, transport):
    envs = [envelope(0), envelope(1, to_email="READER0@Example.com")]
    with pytest.raises(ValueError) as info:
        transport.send(batch(envelopes=envs))
    assert "d0" in str(info.value) and "d1" in str(info.value)
    assert "reader0" not in str(info.value).lower()
    assert standin.request_count == 0


def test_more_than_10_categories_is_refused(transport):
    with pytest.raises(ValueError, match="at most 10 categories"):
        transport.send(batch(1, categories=[f"c{i}" for i in range(11)]))


def test_empty_batch_is_refused(transport):
    with pytest.raises(ValueError):
        transport.send(batch(envelopes=[]))


# --------------------------------------------------------------------------- rate limits and retries


def test_429_waits_until_reset_then_delivers_once(standin, transport, sleeps):
    standin.fail_next(status=429, reset_in=1.0)
    before = time.time()
    outcomes = transport.send(batch(3))

    assert {o.status for o in outcomes} == {"sent"}
    assert standin.request_count == 2
    assert len(standin.delivered_requests) == 1
    assert len(standin.messages()) == 3
    [wait] = sleeps
    # Reset is a whole Unix second at least 1 s after the 429: we wait until then.
    assert 0.9 <= wait <= 2.1
    assert before + wait <= time.time() + 2.1


def test_429_without_reset_header_falls_back_to_backoff(standin, transport, sleeps):
    standin.fail_next(status=429, reset_in=None)
    [outcome] = transport.send(batch(1))
    assert outcome.status == "sent"
    [wait] = sleeps
    assert 0.0 <= wait <= transport.backoff_base


def test_429_wait_is_capped(standin, transport, sleeps):
    standin.fail_next(status=429, reset_in=3600)
    [outcome] = transport.send(batch(1))
    assert outcome.status == "sent"
    assert sleeps == [60.0]


def test_429_until_retries_run_out_fails(standin, sleeps):
    t = SendGridTransport(KEY, host=standin.url, max_retries=2, sleep=sleeps.append)
    standin.fail_next(status=429, reset_in=0, times=3)
    outcomes = t.send(batch(2))
    assert {o.status for o in outcomes} == {"failed"}
    assert "429" in outcomes[0].error and "3 attempts" in outcomes[0].error
    assert standin.request_count == 3 and len(sleeps) == 2
    assert standin.messages() == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success_delivers_once(standin, transport, sleeps, status):
    standin.fail_next(status=status, times=2)
    outcomes = transport.send(batch(3))
    assert {o.status for o in outcomes} == {"sent"}
    assert standin.request_count == 3
    assert len(standin.delivered_requests) == 1
    assert len(standin.messages()) == 3
    # full jitter: uniform(0, min(cap, base * 2**attempt))
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_5xx_until_retries_run_out_fails_every_envelope(standin, sleeps):
    t = SendGridTransport(
        KEY, host=standin.url, max_retries=3, backoff_base=1.0, backoff_cap=2.5, sleep=sleeps.append
    )
    standin.fail_next(status=503, times=4)
    outcomes = t.send(batch(3))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].error == "SendGrid answered 503 on all 4 attempts: Service Unavailable"
    assert standin.request_count == 4
    assert standin.messages() == []
    assert len(sleeps) == 3
    for attempt, wait in enumerate(sleeps):
        assert 0 <= wait <= min(2.5, 1.0 * 2**attempt)


def test_max_retries_zero_means_one_attempt(standin, sleeps):
    t = SendGridTransport(KEY, host=standin.url, max_retries=0, sleep=sleeps.append)
    standin.fail_next(status=500)
    [outcome] = t.send(batch(1))
    assert outcome.status == "failed" and standin.request_count == 1 and sleeps == []


def test_delivered_then_5xx_is_retried_and_so_sent_twice(standin, transport):
    """The hazard SendGrid leaves us: no idempotency key. A 5xx after delivery is retried
    (5xx usually means "not done"), so this rare case duplicates the batch."""
    standin.fail_next(status=500, deliver=True)
    outcomes = transport.send(batch(2))
    assert {o.status for o in outcomes} == {"sent"}
    assert len(standin.delivered_requests) == 2


def test_connection_refused_is_retried_then_fails(monkeypatch, sleeps):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    port = closed_port()
    t = SendGridTransport(KEY, host=f"http://127.0.0.1:{port}", max_retries=2, sleep=sleeps.append)
    outcomes = t.send(batch(2))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].error.startswith(f"could not reach SendGrid at http://127.0.0.1:{port} on 3 attempts")
    assert len(sleeps) == 2


def test_connection_refused_then_server_comes_up(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    port = closed_port()
    started: list[SendGridStandIn] = []

    def sleep(seconds: float) -> None:  # the server comes up while we back off
        if not started:
            started.append(SendGridStandIn(api_key=KEY, port=port).start())

    t = SendGridTransport(KEY, host=f"http://127.0.0.1:{port}", sleep=sleep)
    try:
        outcomes = t.send(batch(2))
        assert {o.status for o in outcomes} == {"sent"}
        assert started[0].request_count == 1 and len(started[0].messages()) == 2
    finally:
        for sg in started:
            sg.stop()


# --------------------------------------------------------------------------- refusals


def test_400_fails_every_envelope_with_sendgrid_message(standin, transport, sleeps):
    standin.fail_next(status=400, message="The from email does not contain a valid address.")
    outcomes = transport.send(batch(3))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].error == (
        "SendGrid rejected the request (400): The from email does not contain a valid address."
    )
    assert standin.request_count == 1 and sleeps == []


def test_real_validation_400_carries_every_message_and_field(standin, transport):
    envs = [envelope(0, headers={"Reply-To": "x@example.org"}), envelope(1, headers={"X-Ok": "1"})]
    outcomes = transport.send(batch(envelopes=envs))
    assert {o.status for o in outcomes} == {"failed"}
    assert outcomes[0].error.startswith(
        "SendGrid rejected the request (400): The header 'Reply-To' is reserved"
    )
    assert "(field: personalizations.0.headers.Reply-To)" in outcomes[0].error
    assert standin.messages() == []


def test_413_html_answer_is_kept_raw_and_truncated(standin, transport):
    page = "<html><body><h1>413 Request Entity Too Large</h1>" + "x" * 2000 + "</body></html>"
    standin.fail_next(status=413, body=page, content_type="text/html")
    outcomes = transport.send(batch(1))
    assert outcomes[0].status == "failed"
    error = outcomes[0].error
    assert error.startswith(
        "SendGrid rejected the request (413): <html><body><h1>413 Request Entity Too Large"
    )
    assert len(error) <= len("SendGrid rejected the request (413): ") + 503


def test_401_raises_fatal_with_a_clear_message(standin, sleeps):
    bad_key = "SG.wrong-key-abc"
    t = SendGridTransport(bad_key, host=standin.url, sleep=sleeps.append)
    with pytest.raises(FatalTransportError) as info:
        t.send(batch(2))
    err = info.value
    assert err.status == 401
    assert str(err).startswith(
        "SendGrid rejected the API key (401): "
        "The provided authorization grant is invalid, expired, or revoked."
    )
    assert "SENDGRID_API_KEY" in str(err)
    assert bad_key not in str(err) and bad_key not in (err.body or "")
    assert json.loads(err.body)["errors"][0]["message"].startswith("The provided authorization grant")
    assert err.exit_code == 3
    assert standin.request_count == 1 and sleeps == []


def test_403_raises_fatal(standin, sleeps):
    t = SendGridTransport(FORBIDDEN, host=standin.url, sleep=sleeps.append)
    with pytest.raises(FatalTransportError) as info:
        t.send(batch(1))
    assert info.value.status == 403
    assert str(info.value).startswith("SendGrid rejected the API key (403): access forbidden.")
    assert "SENDGRID_API_KEY" in str(info.value)
    assert standin.request_count == 1 and sleeps == []


# --------------------------------------------------------------------------- timeouts, sandbox


def test_no_answer_is_unknown_and_never_retried(standin, sleeps):
    t = SendGridTransport(KEY, host=standin.url, timeout=0.3, sleep=sleeps.append)
    standin.fail_next(hang=5.0)
    started = time.monotonic()
    outcomes = t.send(batch(3))
    elapsed = time.monotonic() - started

    assert {o.status for o in outcomes} == {"unknown"}
    assert outcomes[0].error == "no answer from SendGrid within 0.3s; the request may have been delivered"
    assert outcomes[0].provider_message_id is None
    assert elapsed < 2.0
    assert standin.request_count == 1  # no second request
    assert sleeps == []
    assert standin.messages() == []


def test_connection_dropped_after_sending_is_unknown(standin, sleeps):
    t = SendGridTransport(KEY, host=standin.url, timeout=5.0, sleep=sleeps.append)
    standin.fail_next(hang=0.05)  # no status: the stand-in closes without answering
    outcomes = t.send(batch(1))
    assert outcomes[0].status == "unknown"
    assert "may have been delivered" in outcomes[0].error
    assert standin.request_count == 1 and sleeps == []


def test_sandbox_mode_gets_200_and_marks_sent(standin, sleeps):
    t = SendGridTransport(KEY, host=standin.url, sandbox_mode=True, sleep=sleeps.append)
    outcomes = t.send(batch(3))
    assert {o.status for o in outcomes} == {"sent"}
    [request] = standin.requests
    assert request.status == 200 and request.sandboxed
    assert request.body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert outcomes[0].provider_message_id == request.message_id
    assert standin.messages() == []  # validated, not delivered


# --------------------------------------------------------------------------- plumbing


def test_proxy_environment_does_not_matter(standin, transport, monkeypatch):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    [outcome] = transport.send(batch(1))
    assert outcome.status == "sent"


def test_concurrent_sends_from_many_threads(standin, transport):
    results: dict[int, list] = {}

    def work(k: int) -> None:
        results[k] = transport.send(batch(50, start=k * 50))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert standin.request_count == 8
    assert all({o.status for o in r} == {"sent"} for r in results.values())
    assert len({m.to_email for m in standin.messages()}) == 400


def test_logs_never_show_addresses_or_the_key(standin, transport, caplog):
    caplog.set_level(logging.DEBUG)
    standin.fail_next(status=429, reset_in=0)
    standin.fail_next(status=503)
    transport.send(batch(2))
    standin.fail_next(status=400, message="nope")
    transport.send(batch(2, start=5))
    with pytest.raises(FatalTransportError):
        SendGridTransport("SG.other", host=standin.url).send(batch(1))
    text = caplog.text
    assert "retry" in text  # we did log something
    assert "@example.com" not in text and "Reader" not in text
    assert KEY not in text and "SG.other" not in text and "Bearer" not in text


def test_repr_hides_the_key(standin):
    t = SendGridTransport(KEY, host=standin.url)
    assert KEY not in repr(t)
    assert t.name == "sendgrid"


def test_closed_transport_refuses_to_send(standin, transport):
    transport.close()
    transport.close()
    with pytest.raises(RuntimeError):
        transport.send(batch(1))


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError):
        SendGridTransport("")
    with pytest.raises(ValueError):
        SendGridTransport(KEY, host="api.sendgrid.com")
    with pytest.raises(ValueError):
        SendGridTransport(KEY, timeout=0)


def test_build_request_body_matches_what_is_sent(standin, transport):
    b = batch(4)
    transport.send(b)
    assert standin.requests[0].body == build_request_body(b)


# =========================================================================== the stand-in itself


def post(sg: SendGridStandIn, body: Any, *, key: str | None = KEY, raw: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", sg.port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        data = raw if raw is not None else json.dumps(body).encode()
        conn.request("POST", "/v3/mail/send", body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, resp.headers, (json.loads(payload) if payload.startswith(b"{") else payload)
    finally:
        conn.close()


def mail(n: int = 1, **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [
            {"to": [{"email": f"p{i}@example.com"}], "subject": "S", "custom_args": {"delivery_id": str(i)}}
            for i in range(n)
        ],
        "from": {"email": "clinic@example.org"},
        "content": [{"type": "text/plain", "value": "t"}, {"type": "text/html", "value": "<p>h</p>"}],
    }
    body.update(top)
    return body


def assert_400(sg: SendGridStandIn, body: Any, fragment: str, **kw: Any) -> dict:
    status, _, answer = post(sg, body, **kw)
    assert status == 400, answer
    assert set(answer["errors"][0]) == {"message", "field", "help"}
    messages = " | ".join(e["message"] for e in answer["errors"])
    assert fragment in messages
    assert sg.requests == [] and sg.messages() == []
    return answer


def test_standin_accepts_a_valid_request(standin):
    status, headers, answer = post(standin, mail(2))
    assert status == 202 and answer == b""
    assert headers["Content-Length"] == "0"
    assert len(headers["X-Message-Id"]) >= 16
    assert standin.requests[0].message_id == headers["X-Message-Id"]
    assert len(standin.messages()) == 2


def test_standin_keeps_connections_alive(standin):
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        ids = []
        for _ in range(3):
            conn.request(
                "POST",
                "/v3/mail/send",
                body=json.dumps(mail(1)).encode(),
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 202
            ids.append(resp.headers["X-Message-Id"])
        assert len(set(ids)) == 3
    finally:
        conn.close()
    # the same address in separate requests is fine
    assert standin.stats()["delivered_requests"] == 3


@pytest.mark.parametrize("key", [None, "SG.nope", "sg.test-key-123"])
def test_standin_401_on_missing_or_wrong_key(standin, key):
    status, _, answer = post(standin, mail(1), key=key)
    assert status == 401
    assert answer == {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
                "help": None,
            }
        ]
    }
    assert standin.messages() == []


def test_standin_403_on_forbidden_key(standin):
    status, _, answer = post(standin, mail(1), key=FORBIDDEN)
    assert status == 403 and answer["errors"][0]["message"]


def test_standin_400_on_invalid_json(standin):
    assert_400(standin, None, "not valid JSON", raw=b"{not json")


def test_standin_400_without_personalizations(standin):
    assert_400(standin, mail(0), "personalizations field is required")
    body = mail(1)
    del body["personalizations"]
    assert_400(standin, body, "personalizations field is required")


def test_standin_400_on_more_than_1000_personalizations(standin):
    assert_400(standin, mail(1001), "more than 1000 personalizations")
    assert post(standin, mail(1000))[0] == 202


def test_standin_400_on_more_than_1000_recipients(standin):
    body = mail(0)
    body["personalizations"] = [
        {"to": [{"email": f"a{i}@example.com"}, {"email": f"b{i}@example.com"}], "subject": "S"}
        for i in range(500)
    ]
    body["personalizations"][0]["cc"] = [{"email": "cc@example.com"}]
    assert_400(standin, body, "total number of recipients")


@pytest.mark.parametrize(
    "where",
    ["across personalizations", "to and cc", "to and bcc of another", "same to list"],
)
def test_standin_400_on_duplicate_address_case_insensitive(standin, where):
    body = mail(2)
    ps = body["personalizations"]
    if where == "across personalizations":
        ps[1]["to"] = [{"email": "P0@Example.COM"}]
    elif where == "to and cc":
        ps[0]["cc"] = [{"email": "p0@EXAMPLE.com"}]
    elif where == "to and bcc of another":
        ps[1]["bcc"] = [{"email": "p0@example.com"}]
    else:
        ps[0]["to"].append({"email": "P0@example.com"})
    answer = assert_400(standin, body, "must be unique")
    assert "p0@example.com" not in json.dumps(answer).lower()


def test_standin_400_without_from_or_subject(standin):
    body = mail(1)
    del body["from"]
    assert_400(standin, body, "from object must be provided")
    body = mail(2)
    del body["personalizations"][1]["subject"]
    assert_400(standin, body, "subject is required")
    # a top-level subject covers personalizations without one
    body["subject"] = "Top"
    assert post(standin, body)[0] == 202


def test_standin_400_on_missing_or_misordered_content(standin):
    body = mail(1)
    del body["content"]
    assert_400(standin, body, "content parameter is required")
    body = mail(1, content=[{"type": "text/html", "value": "<p>h</p>"}, {"type": "text/plain", "value": "t"}])
    assert_400(standin, body, "text/plain, then text/html")
    body = mail(1, content=[{"type": "text/plain", "value": ""}])
    assert_400(standin, body, "at least one character")
    assert post(standin, mail(1, content=[{"type": "text/html", "value": "<p>only html</p>"}]))[0] == 202


@pytest.mark.parametrize("name", sorted(RESERVED_HEADERS))
def test_standin_400_on_reserved_headers(standin, name):
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
    body = mail(1)
    body["personalizations"][0]["headers"] = {mixed: "x"}
    assert_400(standin, body, "is reserved")
    assert_400(standin, mail(1, headers={name.upper(): "x"}), "is reserved")


def test_standin_allows_list_unsubscribe_headers(standin):
    body = mail(1)
    body["personalizations"][0]["headers"] = {
        "List-Unsubscribe": "<https://example.org/u/x>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert post(standin, body)[0] == 202


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
def test_standin_400_on_non_string_custom_args(standin, value):
    body = mail(1)
    body["personalizations"][0]["custom_args"] = {"delivery_id": value}
    assert_400(standin, body, "Expected: string")
    assert_400(standin, mail(1, custom_args={"campaign": value}), "Expected: string")


def test_standin_400_on_oversized_custom_args_and_substitutions(standin):
    body = mail(1, custom_args={"a": "x" * 6000})
    body["personalizations"][0]["custom_args"] = {"b": "y" * 4000}  # together over 10,000 bytes
    assert_400(standin, body, "custom_args")
    body = mail(1)
    body["personalizations"][0]["substitutions"] = {"-x-": "z" * 10_001}
    assert_400(standin, body, "substitutions")
    body = mail(1)
    body["personalizations"][0]["substitutions"] = {"-x-": "z" * 9_000}
    assert post(standin, body)[0] == 202


def test_standin_413_over_30_mb(standin):
    body = mail(1)
    body["content"][0]["value"] = "x" * (30 * 1024 * 1024 + 10)
    status, headers, answer = post(standin, body)
    assert status == 413
    assert headers["Content-Type"] == "text/html" and b"413" in answer
    assert standin.requests == []


def test_standin_sandbox_answers_200_and_does_not_deliver(standin):
    status, headers, answer = post(standin, mail(2, mail_settings={"sandbox_mode": {"enable": True}}))
    assert status == 200 and answer == b"" and headers["X-Message-Id"]
    assert standin.requests[0].sandboxed
    assert standin.messages() == []
    assert standin.stats()["messages"] == 0 and standin.stats()["sandboxed_requests"] == 1


def test_standin_scripted_429_has_rate_limit_headers(standin):
    standin.fail_next(status=429, reset_in=2.0)
    now = time.time()
    status, headers, answer = post(standin, mail(1))
    assert status == 429 and answer["errors"]
    assert headers["X-RateLimit-Limit"] and headers["X-RateLimit-Remaining"] == "0"
    assert now + 1.0 <= int(headers["X-RateLimit-Reset"]) <= now + 4
    assert post(standin, mail(1))[0] == 202  # one failure only


def test_standin_scripted_deliver_then_500(standin):
    standin.fail_next(status=500, deliver=True)
    status, headers, _ = post(standin, mail(2))
    assert status == 500 and "X-Message-Id" not in headers
    assert len(standin.messages()) == 2


def test_standin_scripted_hang_does_not_deliver(standin):
    standin.fail_next(hang=0.05, status=503)
    status, _, answer = post(standin, mail(1))
    assert status == 503 and answer["errors"][0]["message"] == "Service Unavailable"
    assert standin.messages() == [] and standin.request_count == 1


def test_standin_failures_apply_only_to_authorized_requests(standin):
    standin.fail_next(status=500)
    assert post(standin, mail(1), key="SG.bad")[0] == 401
    assert post(standin, mail(1))[0] == 500


def test_standin_latency(standin):
    standin.latency = 0.2
    started = time.monotonic()
    assert post(standin, mail(1))[0] == 202
    assert time.monotonic() - started >= 0.2


def test_standin_reset_and_stats(standin):
    post(standin, mail(3))
    post(standin, mail(1), key="SG.bad")
    standin.fail_next(status=500, times=5)
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        conn.request("GET", "/_standin/stats")
        resp = conn.getresponse()
        stats = json.loads(resp.read())
    finally:
        conn.close()
    assert stats["requests"] == 2 and stats["messages"] == 3 and stats["rejected"] == 1
    standin.reset()
    assert standin.stats()["requests"] == 0 and standin.requests == [] and standin.request_count == 0
    assert post(standin, mail(1))[0] == 202  # the scripted failures are gone too


def test_standin_count_only_counts_without_storing(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SendGridStandIn(api_key=KEY, count_only=True) as sg:
        t = SendGridTransport(KEY, host=sg.url)
        t.send(batch(1000))
        t.send(batch(500, start=1000))
        assert post(sg, mail(1001))[0] == 400
        assert sg.requests == [] and sg.messages() == []
        stats = sg.stats()
        assert stats["requests"] == 3 and stats["messages"] == 1500 and stats["rejected"] == 1


def test_standin_runs_as_a_separate_process():
    cmd = [
        sys.executable,
        "-m",
        "tests.support.sendgrid_standin",
        "--port",
        "0",
        "--latency",
        "0.01",
        "--api-key",
        "SG.x",
        "--count-only",
    ]
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("READY http://127.0.0.1:"), line
            url = line.split()[1]
            port = int(url.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(
                    "POST",
                    "/v3/mail/send",
                    body=json.dumps(mail(7)).encode(),
                    headers={"Authorization": "Bearer SG.x", "Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 202
                conn.request("GET", "/_standin/stats")
                resp = conn.getresponse()
                stats = json.loads(resp.read())
            finally:
                conn.close()
            assert stats["requests"] == 1 and stats["messages"] == 7 and stats["rejected"] == 0
        finally:
            proc.terminate()
            proc.communicate(timeout=10)
        assert proc.returncode == 0
