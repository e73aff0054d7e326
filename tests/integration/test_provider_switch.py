"""Switching a running install from SendGrid to Amazon SES loses nothing: the SendGrid
webhook stays live, so emails already handed to SendGrid (sent, or stuck with an unknown
outcome) still settle and suppress from SendGrid's events while SES sends what comes next."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.aws import CONFIGURATION_SET, REGION
from tests.support.factories import active_subscribers, make_app
from tests.support.processes import STEP_TIMES
from tests.support.provider_events import events_for
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.ses_standin import SesStandIn
from tests.support.webserver import WebhookSigner, live_web, sg_event, webhook_body


def test_switching_from_sendgrid_to_ses_loses_nothing(
    tmp_path: Path, standin: SendGridStandIn, ses: SesStandIn
) -> None:
    signer = WebhookSigner()
    sendgrid_env = {"SENDGRID_API_KEY": "SG.test", "NURTURE_SENDGRID_HOST": standin.url, **signer.environ}
    before = make_app(
        tmp_path,
        environ=sendgrid_env,
        **{"delivery.transport": "sendgrid", "delivery.batch_size": 10, "delivery.request_timeout": 0.5},
    )
    active_subscribers(before, 30, STEP_TIMES[0] - timedelta(minutes=5))
    standin.fail_next(hang=1.5)  # one batch of ten: no answer in time, the outcome unknown
    summary = send_due(before, STEP_TIMES[0])
    assert summary.sent == 20
    with transaction(before.engine) as session:
        rows = session.execute(
            select(m.Delivery.message_key, m.Delivery.status, m.Subscriber.email).join(m.Subscriber)
        ).all()
    # What SendGrid echoes in each event is the email's message key (as it was sent with it).
    stuck = {email: key for key, status, email in rows if status == m.DeliveryStatus.CLAIMED}
    assert len(stuck) == 10
    before.transport.close()

    # The switch: config.yaml now says ses; the SendGrid webhook key stays in the environment.
    ses_settings = {
        "delivery.transport": "ses",
        "delivery.batch_size": 10,
        "ses.region": REGION,
        "ses.configuration_set": CONFIGURATION_SET,
    }
    with live_web(tmp_path, environ=signer.environ, **ses_settings) as web, web.client() as client:
        assert web.app.transport.name == "ses"
        late = events_for(standin.messages())  # "processed" for each email SendGrid took
        late += [
            sg_event("processed", n, delivery_id=key, email=email)
            for n, (email, key) in enumerate(sorted(stuck.items()), start=1000)
        ]
        bounced = next(iter(stuck))
        late.append(sg_event("bounce", 99_999, delivery_id=stuck[bounced], email=bounced, type="bounce"))
        body = webhook_body(late)
        answer = client.post("/webhooks/sendgrid", content=body.encode(), headers=signer.headers(body))
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 31

        with transaction(web.app.engine) as session:
            statuses = Counter(session.scalars(select(m.Delivery.status)))
            person = session.scalar(select(m.Subscriber.status).where(m.Subscriber.email == bounced))
        assert statuses == Counter({m.DeliveryStatus.SENT: 30}), "SendGrid's events settled every stuck email"
        assert person == m.SubscriberStatus.BOUNCED

        # What comes next goes through SES, to everyone but the bounced, and nobody gets step 1 again.
        send_due(web.app, STEP_TIMES[1])
    step_two = Counter(message.to_email for message in ses.messages())
    assert len(step_two) == 29 and set(step_two.values()) == {1}
    assert bounced not in step_two
    assert all(message.raw_subject != standin.messages()[0].raw_subject for message in ses.messages())
