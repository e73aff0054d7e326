"""The signup rate limit in the store (issue 10, item 12): counted atomically, keyed by a hash, pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.ratelimit import SignupLimit, client_key
from tests.support.factories import SECRET, at, make_app

NOW = at("2026-12-01 15:00")


def rows(app: App) -> list[tuple[str, int]]:
    with transaction(app.engine) as session:
        return sorted(
            (key, attempts)
            for key, attempts in session.execute(
                select(m.SignupAttempt.client_hash, m.SignupAttempt.attempts)
            )
        )


def check_limit(app: App) -> None:
    limit = SignupLimit(3, 600)
    verdicts = [limit.attempt(app, "198.51.100.7", NOW + timedelta(seconds=n)) for n in range(5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert [v.retry_after for v in verdicts[3:]] == [597, 596]
    assert limit.attempt(app, "2001:db8::1", NOW).allowed  # another client, its own count
    assert rows(app) == sorted(
        [(client_key(SECRET, "198.51.100.7"), 5), (client_key(SECRET, "2001:db8::1"), 1)]
    )
    assert all("198.51" not in key and "2001" not in key and len(key) == 64 for key, _ in rows(app))

    later = NOW + timedelta(seconds=600)  # the first window is over: a fresh count, the others pruned
    assert limit.attempt(app, "198.51.100.7", later).allowed
    assert rows(app) == [(client_key(SECRET, "198.51.100.7"), 1)]


def test_the_limit_on_sqlite(tmp_path):
    app = make_app(tmp_path)
    try:
        check_limit(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_the_limit_on_postgresql(tmp_path, postgres_url):
    app = make_app(tmp_path, database_url=postgres_url)
    try:
        check_limit(app)
    finally:
        app.close()


def test_the_key_depends_on_the_secret():
    assert client_key("one-secret-0123456789abcdef", "203.0.113.9") != client_key(
        "another-secret-0123456789abc", "203.0.113.9"
    )
    assert client_key(SECRET, None) == client_key(SECRET, None)
