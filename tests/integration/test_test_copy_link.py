"""The unsubscribe link in a `newsletter test` copy says it is a test and changes nothing."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as default_policy

from sqlalchemy import func, select

from nurture.newsletters import send_test
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import REPO, active_subscribers, at
from tests.support.webserver import live_web


def test_the_test_copy_unsubscribe_link_says_it_is_a_test(tmp_path):
    with live_web(tmp_path) as web, web.client() as client:
        active_subscribers(web.app, 1, at("2026-12-01 14:00"))
        send_test(web.app, REPO / "campaigns" / "newsletters" / "2026-12-winter-note.md", "owner@example.com")
        [path] = web.app.config.outbox_dir.glob("*.eml")
        message = message_from_bytes(path.read_bytes(), policy=default_policy)
        url = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"])).group(1)
        path_only = url.removeprefix(web.url)
        for answer in (
            client.get(path_only),
            client.post(path_only),
            client.post(path_only, data={"List-Unsubscribe": "One-Click"}),
        ):
            assert answer.status_code == 200
            assert "This is a test copy" in answer.text and "nothing was changed" in answer.text
            assert "You are unsubscribed" not in answer.text
        with transaction(web.app.engine) as session:
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(m.ConsentEvent)
                    .where(m.ConsentEvent.kind == m.ConsentKind.UNSUBSCRIBE)
                )
                == 0
            )
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(m.Subscriber)
                    .where(m.Subscriber.status == m.SubscriberStatus.ACTIVE)
                )
                == 1
            )
