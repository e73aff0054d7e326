"""Signups off the request path, and a rate limit every web process shares (issue 10, item 12)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from nurture.app import App
from nurture.store import models as m
from nurture.store.db import transaction
from nurture.web.signups import DELAY as SIGNUP_DELAY
from nurture.web.site import create_app
from tests.support.factories import open_app
from tests.support.webserver import bind_socket, live_web, running


def form(email: str) -> dict[str, str]:
    return {"email": email, "first_name": "", "timezone": "", "consent_version": "2026-11-v1", "website": ""}


def outbox(app: App) -> list[Path]:
    folder = app.config.outbox_dir
    return sorted(folder.glob("*-confirm-*.eml")) if folder.exists() else []


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def on_opt_in(app: App, action: Callable[[], None]) -> None:
    """Run `action` whenever the store records an opt-in (the signup work), whichever code does it."""

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CONSENT_EVENTS"):
            action()

    event.listen(app.engine, "before_cursor_execute", before)


def test_the_signup_work_starts_after_the_requests_that_follow_the_answer(tmp_path):
    with live_web(tmp_path) as web, web.client() as client:
        worked: list[float] = []
        on_opt_in(web.app, lambda: worked.append(time.monotonic()))
        client.get("/healthz")  # the keep-alive connection is open
        assert client.post("/subscribe", data=form("ana@example.com")).status_code == 200
        answered = time.monotonic()
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            assert client.get("/subscribe").status_code == 200
        followed = time.monotonic()
        assert wait_for(lambda: len(outbox(web.app)) == 1)
    assert len(worked) == 1
    assert worked[0] > followed, "the signup work ran beside the requests that followed it"
    assert worked[0] - answered > SIGNUP_DELAY / 2


def test_stopping_the_server_does_the_signups_already_accepted_at_once(tmp_path):
    with live_web(tmp_path) as web, web.client() as client:
        on_opt_in(web.app, lambda: time.sleep(0.2))
        for n in range(3):
            assert client.post("/subscribe", data=form(f"p{n}@example.com")).status_code == 200
        app = web.app
        assert outbox(app) == []
        stopping = time.monotonic()
    assert len(outbox(app)) == 3
    assert time.monotonic() - stopping < 3 * SIGNUP_DELAY, "stopping waited out the delays"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def two_processes(tmp_path) -> Iterator[tuple[httpx.Client, httpx.Client, App, Clock]]:
    """Two web apps, each with its own engine (as two processes would have), on one store."""
    clock = Clock()
    with live_web(tmp_path, app_options={"clock": clock, "rate_limit": (4, 600.0)}) as first:
        second_app = open_app(first.app.config)
        try:
            with (
                running(
                    create_app(second_app, clock=clock, rate_limit=(4, 600.0)), bind_socket()
                ) as second_url,
                first.client() as one,
                httpx.Client(base_url=second_url, trust_env=False) as two,
            ):
                yield one, two, first.app, clock
        finally:
            second_app.close()


def test_the_rate_limit_is_shared_by_every_process_and_keyed_by_a_hash(two_processes):
    one, two, app, clock = two_processes
    answers = [
        client.post("/subscribe", data=form(f"p{n}@example.com")).status_code
        for n, client in enumerate([one, two, one, two])
    ]
    assert answers == [200] * 4
    for client in (one, two):
        refused = client.post("/subscribe", data=form("late@example.com"))
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 600
    other = two.post("/subscribe", data=form("q@example.com"), headers={"X-Forwarded-For": "203.0.113.9"})
    assert other.status_code == 200

    with transaction(app.engine) as session:
        rows = session.execute(select(m.SignupAttempt.client_hash, m.SignupAttempt.attempts)).all()
    assert sorted(attempts for _, attempts in rows) == [1, 6]
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key, _ in rows)
    assert not any(ip in key for key, _ in rows for ip in ("127.0.0.1", "203.0.113.9"))

    clock.now += timedelta(seconds=601)  # the window has passed: allowed again, and old rows pruned
    assert one.post("/subscribe", data=form("again@example.com")).status_code == 200
    with transaction(app.engine) as session:
        assert session.scalar(select(func.count()).select_from(m.SignupAttempt)) == 1
