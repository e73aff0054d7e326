"""Rotating the secret key on a real store: links signed with the previous key keep working,
new links use the new key, and suppressions hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nurture import links, tokens
from nurture.addresses import normalize_email
from nurture.audience.consent import is_suppressed
from nurture.audience.people import forget
from nurture.audience.signup import confirm, subscribe
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import make_app

KEY = "current-key-0123456789abcdef"
OLD = "previous-key-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_after_rotation_old_links_work_new_links_use_the_new_key_and_suppression_holds(tmp_path):
    before = make_app(tmp_path, environ={"NURTURE_SECRET_KEY": OLD})
    sid = subscribe(before, "sam@example.com", NOW).subscriber_id
    subscribe(before, "kim@example.com", NOW)
    forget(before, "kim@example.com", NOW)
    with transaction(before.engine) as session:
        nonce = session.get(m.Subscriber, sid).confirm_nonce
    old_link = tokens.make_confirm_token(OLD, sid, nonce, NOW)

    after = make_app(
        tmp_path,
        environ={"NURTURE_SECRET_KEY": KEY, "NURTURE_PREVIOUS_SECRET_KEYS": OLD},
    )
    assert confirm(after, old_link, NOW + timedelta(hours=1)).status == "confirmed"
    new_link = links.unsubscribe_url(after.config, sid, "kap-intro").rsplit("/", 1)[1]
    assert tokens.read_unsubscribe_token(KEY, new_link).subscriber_id == sid
    with transaction(after.engine) as session:
        assert is_suppressed(session, after, normalize_email("kim@example.com")[1])
