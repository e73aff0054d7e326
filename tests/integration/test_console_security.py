"""The owner console's door: sessions, cookies, CSRF and Origin, throttling, headers,
and that every console route needs a session. Against a real uvicorn server."""

from __future__ import annotations

import hashlib
import logging
import re

import pyotp
import pytest
from sqlalchemy import select
from starlette.routing import Mount

from nurture.errors import InputError
from nurture.owners.accounts import add_owner
from nurture.owners.codeapp import enrol_totp
from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.console.access import LOGIN_CSRF_COOKIE, SESSION_COOKIE, is_public
from nurture.web.site import create_app
from tests.support.console import OWNER, PASSWORD, console, csrf
from tests.support.factories import active_subscribers


def _sessions(app):
    with reading(app.engine) as session:
        return list(session.scalars(select(m.OwnerSession)))


def _tags(app, subscriber_id):
    with reading(app.engine) as session:
        return list(
            session.scalars(select(m.SubscriberTag.tag).where(m.SubscriberTag.subscriber_id == subscriber_id))
        )


def _audit(app):
    with reading(app.engine) as session:
        return [
            (row.owner, row.action, row.detail)
            for row in session.scalars(select(m.OwnerAuditEntry).order_by(m.OwnerAuditEntry.id))
        ]


# ---------------------------------------------------------------- on and off


def test_the_console_is_off_until_an_owner_exists(tmp_path):
    with console(tmp_path, with_owner=False) as site:
        answer = site.client().get("/console/login")
        assert answer.status_code == 404
        assert "not open yet" in answer.text
        add_owner(site.app, OWNER, PASSWORD, site.clock.now)
        assert site.client().get("/console/login").status_code == 200


def test_console_enabled_false_turns_it_off(tmp_path):
    with console(tmp_path, **{"console.enabled": False}) as site:
        assert site.client().get("/console/login").status_code == 404
        assert site.client().get("/subscribe").status_code == 200


# ---------------------------------------------------------------- every route needs a session


def _console_routes(app):
    site = create_app(app)
    mounts = [route for route in site.routes if isinstance(route, Mount) and route.path == "/console"]
    assert len(mounts) == 1
    samples = {
        "subscriber_id": "1",
        "newsletter_id": "1",
        "slug": "kap-intro",
        "step": "1",
        "action": "tag",
        "owner_id": "1",
        "invite_id": "1",
        "hold_id": "1",
        "token": "x" * 43,
    }
    for route in mounts[0].routes:
        path = "/console" + re.sub(r"\{(\w+)(:\w+)?\}", lambda found: samples[found.group(1)], route.path)
        for method in sorted(route.methods - {"HEAD"}):
            yield method, path


def test_every_console_route_redirects_to_login_without_a_session(tmp_path):
    with console(tmp_path) as site:
        active_subscribers(site.app, 1, site.clock.now)
        routes = list(_console_routes(site.app))
        assert len(routes) >= 15  # the enumeration found the console's routes
        client = site.client()
        checked = 0
        for method, path in routes:
            if is_public(path):
                continue
            answer = client.request(
                method, path, data={"csrf_token": "x", "tag": "booked"} if method == "POST" else None
            )
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"] == "/console/login", (method, path)
            checked += 1
        assert checked >= 15
        # A forged session cookie is no session either.
        client.cookies.set(SESSION_COOKIE, "made-up", domain="127.0.0.1", path="/console")
        assert client.get("/console/subscribers").headers["location"] == "/console/login"
        assert _tags(site.app, 1) == []


# ---------------------------------------------------------------- passwords and TOTP


def test_passwords_are_argon2id_and_at_least_12_characters(tmp_path):
    with console(tmp_path) as site:
        with pytest.raises(InputError, match="at least 12"):
            add_owner(site.app, "b@riverbend.example", "elevenchars", site.clock.now)
        with reading(site.app.engine) as session:
            digest = session.scalar(select(m.Owner.password_hash))
        assert digest.startswith("$argon2id$") and PASSWORD not in digest


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(tmp_path):
    with console(tmp_path) as site:
        wrong = site.try_login(site.client(), password="not the password at all")
        unknown = site.try_login(site.client(), email="nobody@riverbend.example")
        assert wrong.status_code == unknown.status_code == 400
        problem = re.compile(r'<div class="warning" role="alert"><p>(.*?)</p>')
        assert problem.search(wrong.text).group(1) == problem.search(unknown.text).group(1)
        assert SESSION_COOKIE + "=" not in wrong.headers.get("set-cookie", "")


def test_totp_when_enrolled_and_when_required(tmp_path):
    with console(tmp_path) as site:
        secret, uri = enrol_totp(site.app, OWNER)
        assert uri.startswith("otpauth://totp/")
        assert site.try_login(site.client()).status_code == 400  # no code
        assert (
            site.try_login(
                site.client(), code="000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
            ).status_code
            == 400
        )
        site.login(code=pyotp.TOTP(secret).at(site.clock.now))
    (tmp_path / "required").mkdir()
    with console(tmp_path / "required", **{"console.require_totp": True}) as site:
        page = site.client().get("/console/login")
        assert 'name="code"' in page.text
        assert site.try_login(site.client()).status_code == 400  # no code app set up: refused
        secret, _ = enrol_totp(site.app, OWNER)
        site.login(code=pyotp.TOTP(secret).at(site.clock.now))


# ---------------------------------------------------------------- sessions and cookies


def test_cookie_flags_and_the_session_is_stored_as_a_hash(tmp_path):
    with console(tmp_path) as site:
        client = site.client()
        page = client.get("/console/login")
        answer = client.post(
            "/console/login", data={"csrf_token": csrf(page.text), "email": OWNER, "password": PASSWORD}
        )
        cookie = next(
            value for value in answer.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE + "=")
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # http here
        session_id = cookie.split(";")[0].split("=", 1)[1]
        rows = _sessions(site.app)
        assert [row.id_hash for row in rows] == [hashlib.sha256(session_id.encode()).hexdigest()]


def test_cookies_are_secure_when_the_public_address_is_https(tmp_path):
    with console(tmp_path, **{"web.public_base_url": "https://mail.riverbend.example"}) as site:
        client = site.client()
        page = client.get("/console/login")
        login_cookie = page.headers["set-cookie"]
        assert "Secure" in login_cookie
        # The test talks plain http, where a client keeps Secure cookies to itself: hand it over.
        client.cookies.set(
            LOGIN_CSRF_COOKIE,
            login_cookie.split(";")[0].split("=", 1)[1],
            domain="127.0.0.1",
            path="/console",
        )
        answer = client.post(
            "/console/login", data={"csrf_token": csrf(page.text), "email": OWNER, "password": PASSWORD}
        )
        assert answer.status_code == 303
        assert all("Secure" in value for value in answer.headers.get_list("set-cookie"))


def test_login_issues_a_new_session_id_session_fixation(tmp_path):
    with console(tmp_path) as site:
        client = site.client()
        client.cookies.set(SESSION_COOKIE, "chosen-by-an-attacker", domain="127.0.0.1", path="/console")
        site.login(client)
        first = client.cookies.get(SESSION_COOKIE)
        assert first and first != "chosen-by-an-attacker"
        # Signing in again while the first session is live: a new id, and the old one ends.
        again = site.client()
        page = again.get("/console/login")
        again.cookies.set(SESSION_COOKIE, first, domain="127.0.0.1", path="/console")
        answer = again.post(
            "/console/login", data={"csrf_token": csrf(page.text), "email": OWNER, "password": PASSWORD}
        )
        assert answer.status_code == 303
        second = again.cookies.get(SESSION_COOKIE)
        assert second and second != first
        assert client.get("/console/").headers["location"] == "/console/login"
        assert again.get("/console/").status_code == 200
        assert len(_sessions(site.app)) == 1


def test_idle_timeout_30_minutes(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        site.clock.advance(minutes=29)
        assert client.get("/console/").status_code == 200
        site.clock.advance(minutes=29)
        assert client.get("/console/").status_code == 200  # each visit restarts the idle clock
        site.clock.advance(minutes=30, seconds=1)
        assert client.get("/console/").headers["location"] == "/console/login"
        assert _sessions(site.app) == []


def test_absolute_timeout_12_hours(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        for _ in range(24):  # 11 h 36 min, never idle for long
            site.clock.advance(minutes=29)
            assert client.get("/console/").status_code == 200
        site.clock.advance(minutes=24)  # 12 h since signing in
        assert client.get("/console/").headers["location"] == "/console/login"


def test_logout_ends_the_session(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        session_id = client.cookies.get(SESSION_COOKIE)
        page = client.get("/console/")
        answer = client.post("/console/logout", data={"csrf_token": csrf(page.text)})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        assert _sessions(site.app) == []
        again = site.client()
        again.cookies.set(SESSION_COOKIE, session_id, domain="127.0.0.1", path="/console")
        assert again.get("/console/").headers["location"] == "/console/login"
        assert [action for _, action, _ in _audit(site.app)] == ["logged in", "logged out"]


# ---------------------------------------------------------------- CSRF and Origin


def test_a_post_without_csrf_token_or_with_a_foreign_origin_is_refused_and_changes_nothing(tmp_path):
    with console(tmp_path) as site:
        (subscriber_id,) = active_subscribers(site.app, 1, site.clock.now)
        client = site.login()
        token = csrf(client.get(f"/console/subscribers/{subscriber_id}").text)
        url = f"/console/subscribers/{subscriber_id}/tag"
        attempts = [
            ({"tag": "booked"}, {}),  # no token
            ({"tag": "booked", "csrf_token": "wrong"}, {}),  # a wrong token
            ({"tag": "booked", "csrf_token": token}, {"Origin": "https://evil.example"}),  # another site
            ({"tag": "booked", "csrf_token": token}, {"Origin": "null"}),  # opaque origin, no referer
        ]
        for data, headers in attempts:
            assert client.post(url, data=data, headers=headers).status_code == 403, (data, headers)
        no_origin = site.client(cookies=client.cookies, headers={})
        assert (
            no_origin.post(url, data={"tag": "booked", "csrf_token": token}).status_code == 403
        )  # neither Origin nor Referer
        assert _tags(site.app, subscriber_id) == []
        referer = site.client(cookies=client.cookies, headers={"Referer": site.web.url + "/console/"})
        assert referer.post(url, data={"tag": "booked", "csrf_token": token}).status_code == 303
        assert _tags(site.app, subscriber_id) == ["booked"]
        assert (
            "anna@riverbend.example",
            "tagged a subscriber",
            f"subscriber {subscriber_id}: booked",
        ) in _audit(site.app)


def test_publishing_a_series_without_csrf_token_or_origin_is_refused_and_publishes_nothing(tmp_path):
    with console(tmp_path, https=True) as site:
        active_subscribers(site.app, 1, site.clock.now)
        client = site.login()
        folder = site.app.config.campaigns_dir / "kap-intro"
        page = client.get("/console/series/kap-intro/3").text
        edited = (
            (folder / "03-is-kap-safe.md").read_text().replace("Safety is often", "Safety, we find, is often")
        )
        assert (
            client.post(
                "/console/series/kap-intro/3/draft", data={"csrf_token": csrf(page), "source": edited}
            ).status_code
            == 303
        )
        series = client.get("/console/series/kap-intro").text
        token = csrf(series)
        url = "/console/series/kap-intro/publish"
        form = {"version": "2", "who": "everyone"}
        attempts = [
            (form, {}),  # no token
            ({**form, "csrf_token": "wrong"}, {}),  # a wrong token
            ({**form, "csrf_token": token}, {"Origin": "https://evil.example"}),  # another site
        ]
        for data, headers in attempts:
            assert client.post(url, data=data, headers=headers).status_code == 403, (data, headers)
        no_origin = site.client(cookies=client.cookies, headers={})
        assert (
            no_origin.post(url, data={**form, "csrf_token": token}).status_code == 403
        )  # neither Origin nor Referer
        with reading(site.app.engine) as session:
            assert list(
                session.scalars(
                    select(m.SeriesVersion.version).where(m.SeriesVersion.campaign == "kap-intro")
                )
            ) == [1]
        assert "published a series" not in [action for _, action, _ in _audit(site.app)]
        assert (
            client.post(url, data={**form, "csrf_token": token}).status_code == 303
        )  # the same form, from the console itself


def test_the_login_form_needs_its_token_too(tmp_path):
    with console(tmp_path) as site:
        client = site.client()
        client.get("/console/login")
        answer = client.post("/console/login", data={"email": OWNER, "password": PASSWORD})
        assert answer.status_code == 403
        assert _sessions(site.app) == []


# ---------------------------------------------------------------- throttling


def test_ten_failures_for_an_account_lock_it_for_15_minutes(tmp_path):
    with console(tmp_path) as site:
        for _ in range(10):
            assert site.try_login(site.client(), password="wrong wrong wrong").status_code == 400
        refused = site.try_login(site.client())  # the right password
        assert refused.status_code == 429
        site.clock.advance(minutes=15, seconds=1)
        site.login()


def test_ten_failures_from_one_ip_lock_every_account_from_it(tmp_path):
    with console(tmp_path) as site:
        for n in range(10):
            site.try_login(site.client(), email=f"guess{n}@riverbend.example")
        refused = site.try_login(site.client())
        assert refused.status_code == 429
        unknown = site.try_login(site.client(), email="nobody@riverbend.example")
        assert unknown.status_code == 429  # the same answer for an address with no account
        assert re.search(r"Too many attempts", unknown.text) and re.search(r"Too many attempts", refused.text)


# ---------------------------------------------------------------- headers and logs


def test_every_console_page_has_a_strict_csp_and_no_framing(tmp_path):
    with console(tmp_path) as site:
        (subscriber_id,) = active_subscribers(site.app, 1, site.clock.now)
        client = site.login()
        pages = [
            "/console/",
            "/console/subscribers",
            f"/console/subscribers/{subscriber_id}",
            "/console/deliveries",
            "/console/results",
            "/console/audit",
            "/console/newsletters",
            "/console/series",
            "/console/series/kap-intro",
            "/console/series/kap-intro/1",
        ]
        for path in pages + ["/console/login"]:
            answer = (site.client() if path == "/console/login" else client).get(path)
            assert answer.status_code == 200, (path, answer.text[:500])
            assert answer.headers["x-frame-options"] == "DENY"
            csp = answer.headers["content-security-policy"]
            assert (
                "unsafe-inline" not in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
            ), path
            assert (
                "<script" not in answer.text
                and "http://" not in answer.text.replace(site.web.url, "")
                or path.startswith("/console/series/kap-intro")
            ), path  # email previews and check findings quote http:// links


def test_no_console_data_in_the_logs(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with console(tmp_path) as site:
        # After the server started: starting it configures uvicorn's loggers afresh.
        attached = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.access")]
        for logger in attached:
            logger.addHandler(caplog.handler)
        try:
            active_subscribers(site.app, 1, site.clock.now, prefix="zebedee")
            client = site.login()
            client.get("/console/subscribers", params={"q": "P0"})
            client.get("/console/subscribers", params={"q": "zebedee0@example.com"})
            client.get("/console/subscribers/1")
            site.try_login(site.client(), password="a wrong password here")
        finally:
            for logger in attached:
                logger.removeHandler(caplog.handler)
    # The server's logs only: the test's own HTTP client logs what it asked for.
    server = "\n".join(
        record.getMessage() for record in caplog.records if record.name.startswith(("uvicorn", "nurture"))
    )
    assert "/console/subscribers" in server  # the access log was captured
    for secret in ("P0", "zebedee", OWNER, PASSWORD, "a wrong password here"):
        assert secret not in server


@pytest.mark.postgres
def test_sessions_throttling_and_search_on_postgresql(tmp_path, postgres_url):
    with console(tmp_path, **{"database.url": postgres_url}) as site:
        active_subscribers(site.app, 2, site.clock.now)
        client = site.login()
        assert "person1@example.com" in client.get("/console/subscribers", params={"q": "P1"}).text
        token = csrf(client.get("/console/subscribers/1").text)
        assert (
            client.post("/console/subscribers/1/tag", data={"csrf_token": token, "tag": "booked"}).status_code
            == 303
        )
        assert _tags(site.app, 1) == ["booked"]
        for _ in range(10):
            site.try_login(site.client(), password="wrong wrong wrong")
        assert site.try_login(site.client()).status_code == 429
        site.clock.advance(minutes=31)
        assert client.get("/console/").headers["location"] == "/console/login"
