"""The owner's own account in the console, through HTTP against a real server: the code app
(set up with a confirming code, moved, removed), recovery codes (shown once, one use each,
hashed), her password (changing it ends her other sessions), her sessions (listed, ended),
and the attacks on them: guessing codes, reusing a recovery code, a stolen session guessing
the password, CSRF on every form."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pyotp
from sqlalchemy import select

from nurture.store import models as m
from nurture.store.db import reading
from nurture.web.console.access import SESSION_COOKIE
from tests.support.console import OWNER, PASSWORD, console, csrf, recovery_codes, set_up_code_app

NEW_PASSWORD = "a different long passphrase"


def _owner_row(app):
    with reading(app.engine) as session:
        return session.scalar(select(m.Owner))


def _audit(app):
    with reading(app.engine) as session:
        return [(row.owner, row.action, row.detail) for row in session.scalars(select(m.OwnerAuditEntry))]


def _signed_out(client) -> bool:
    answer = client.get("/console/")
    return answer.status_code == 303 and answer.headers["location"] == "/console/login"


# ---------------------------------------------------------------- the code app


def test_the_code_app_is_set_up_in_the_console_with_a_confirming_code(tmp_path):
    """Defect 16: it could only be set up from the command line, without a confirming code."""
    with console(tmp_path) as site:
        client = site.login()
        page = client.get("/console/account")
        assert page.status_code == 200 and "Set up a code app" in page.text
        token = csrf(page.text)
        assert client.post("/console/account/code-app/start", data={"csrf_token": token}).status_code == 303
        setup = client.get("/console/account/code-app")
        assert '<svg role="img" aria-label="QR code to scan with the code app"' in setup.text
        assert "http" not in setup.text.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
            "http://www.w3.org", ""
        )  # drawn here: nothing fetched
        secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', setup.text).group(1).replace(" ", "")
        # Until a code from the new app is typed, nothing about signing in changes.
        assert _owner_row(site.app).totp_sealed is None
        wrong = "000000" if pyotp.TOTP(secret).at(site.clock.now) != "000000" else "111111"
        refused = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": wrong})
        assert refused.status_code == 400 and "did not match" in refused.text
        assert _owner_row(site.app).totp_sealed is None
        code = pyotp.TOTP(secret).at(site.clock.now)
        done = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": code})
        assert done.status_code == 200 and "shown only this once" in done.text
        assert len(recovery_codes(done.text)) == 10
        row = _owner_row(site.app)
        assert row.totp_sealed.startswith("v1.") and secret not in row.totp_sealed
        assert (OWNER, "set up a code app", None) in _audit(site.app)
        # From now on a code is needed, and the code used to confirm is spent.
        assert site.try_login(site.client()).status_code == 400
        assert site.try_login(site.client(), code=code).status_code == 400
        site.clock.advance(seconds=30)
        site.login(code=pyotp.TOTP(secret).at(site.clock.now))


def test_moving_to_a_new_phone_keeps_the_old_app_working_until_the_new_one_is_confirmed(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        old_secret, _ = set_up_code_app(site, client)
        token = csrf(client.get("/console/account").text)
        client.post("/console/account/code-app/start", data={"csrf_token": token})
        new_secret = re.search(
            r'<code class="secret">([A-Z2-7 ]+)</code>', client.get("/console/account/code-app").text
        ).group(1)
        new_secret = new_secret.replace(" ", "")
        assert new_secret != old_secret
        site.clock.advance(seconds=30)
        site.login(code=pyotp.TOTP(old_secret).at(site.clock.now))  # the old phone still works
        code = pyotp.TOTP(new_secret).at(site.clock.now)
        assert (
            client.post(
                "/console/account/code-app/confirm", data={"csrf_token": token, "code": code}
            ).status_code
            == 200
        )
        site.clock.advance(seconds=30)
        assert (
            site.try_login(site.client(), code=pyotp.TOTP(old_secret).at(site.clock.now)).status_code == 400
        )
        site.login(code=pyotp.TOTP(new_secret).at(site.clock.now))


def test_the_code_app_is_removed_with_the_password(tmp_path):
    """Defect 16: a second factor could not be removed."""
    with console(tmp_path) as site:
        client = site.login()
        set_up_code_app(site, client)
        token = csrf(client.get("/console/account").text)
        wrong = client.post(
            "/console/account/code-app/remove", data={"csrf_token": token, "password": "not my password!"}
        )
        assert wrong.status_code == 400 and "password is not right" in wrong.text
        assert _owner_row(site.app).totp_sealed is not None
        removed = client.post(
            "/console/account/code-app/remove", data={"csrf_token": token, "password": PASSWORD}
        )
        assert removed.status_code == 303
        assert "The code app is removed" in client.get(removed.headers["location"]).text
        assert _owner_row(site.app).totp_sealed is None
        with reading(site.app.engine) as session:
            assert session.scalars(select(m.OwnerRecoveryCode)).all() == []
        site.login()  # the password alone again
        assert (OWNER, "removed the code app", None) in _audit(site.app)


def test_the_code_app_cannot_be_removed_where_every_owner_must_have_one(tmp_path):
    with console(tmp_path, **{"console.require_totp": True}) as site:
        from nurture.owners.codeapp import enrol_totp

        secret, _ = enrol_totp(site.app, OWNER)
        client = site.login(code=pyotp.TOTP(secret).at(site.clock.now))
        token = csrf(client.get("/console/account").text)
        answer = client.post(
            "/console/account/code-app/remove", data={"csrf_token": token, "password": PASSWORD}
        )
        assert answer.status_code == 400 and "requires a code app for every owner" in answer.text
        assert _owner_row(site.app).totp_sealed is not None


def test_guessing_the_setup_code_ends_the_setup_after_five_tries(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        token = csrf(client.get("/console/account").text)
        client.post("/console/account/code-app/start", data={"csrf_token": token})
        secret = re.search(
            r'<code class="secret">([A-Z2-7 ]+)</code>', client.get("/console/account/code-app").text
        ).group(1)
        right = pyotp.TOTP(secret.replace(" ", "")).at(site.clock.now)
        wrong = [f"{n:06d}" for n in range(1, 7) if f"{n:06d}" != right][:5]
        for guess in wrong[:4]:
            answer = client.post(
                "/console/account/code-app/confirm", data={"csrf_token": token, "code": guess}
            )
            assert answer.status_code == 400 and "did not match" in answer.text
        last = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": wrong[4]})
        assert last.status_code == 400 and "this setup has ended" in last.text
        late = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": right})
        assert late.status_code == 400  # the right code no longer helps: start again
        assert _owner_row(site.app).totp_sealed is None
        assert client.get("/console/account/code-app").headers["location"] == "/console/account"


def test_a_setup_lapses_after_30_minutes(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        token = csrf(client.get("/console/account").text)
        client.post("/console/account/code-app/start", data={"csrf_token": token})
        secret = re.search(
            r'<code class="secret">([A-Z2-7 ]+)</code>', client.get("/console/account/code-app").text
        ).group(1)
        site.clock.advance(minutes=25)
        client.get("/console/account")  # not idle
        site.clock.advance(minutes=6)
        code = pyotp.TOTP(secret.replace(" ", "")).at(site.clock.now)
        answer = client.post("/console/account/code-app/confirm", data={"csrf_token": token, "code": code})
        assert answer.status_code == 400 and "lapsed" in answer.text
        assert _owner_row(site.app).totp_sealed is None


# ---------------------------------------------------------------- attacks on the second factor


def test_guessing_codes_at_sign_in_is_throttled_and_a_recovery_code_still_works(tmp_path):
    """Someone with her password guesses codes, from many networks: after six wrong codes
    no code is taken for a day (not even the right one); her recovery code still is."""
    with console(tmp_path) as site:
        client = site.login()
        secret, codes = set_up_code_app(site, client)
        right = pyotp.TOTP(secret)
        guesses = [f"{n:06d}" for n in range(100000, 100020)]
        guesses = [
            g
            for g in guesses
            if g not in {right.at(site.clock.now + timedelta(seconds=s)) for s in (-30, 0, 30)}
        ]
        for n, guess in enumerate(guesses[:6]):
            answer = site.try_login(site.client(), code=guess, ip=f"203.0.113.{n + 1}")
            assert answer.status_code == 400
        site.clock.advance(seconds=30)
        refused = site.try_login(site.client(), code=right.at(site.clock.now), ip="198.51.100.77")
        assert refused.status_code == 429 and "Too many attempts" in refused.text
        # The answer for a wrong password is the same: it does not tell that the password was right.
        wrong_password = site.try_login(
            site.client(), password="guess guess guess", code="123456", ip="198.51.100.78"
        )
        assert wrong_password.status_code == 429
        site.clock.advance(hours=23)
        assert (
            site.try_login(site.client(), code=right.at(site.clock.now), ip="198.51.100.79").status_code
            == 429
        )
        rescued = site.try_login(site.client(), code=codes[0], ip="198.51.100.80")
        assert (
            rescued.status_code == 303
            and rescued.headers["location"] == "/console/account?done=recovery-used"
        )
        site.clock.advance(hours=1, seconds=30)  # a day after the guesses: codes are taken again
        site.login(code=right.at(site.clock.now), ip="198.51.100.81")


def test_a_recovery_code_works_once_and_is_stored_hashed(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        _, codes = set_up_code_app(site, client)
        with reading(site.app.engine) as session:
            stored = set(session.scalars(select(m.OwnerRecoveryCode.code_hash)))
        plain = codes[3].replace("-", "")
        assert hashlib.sha256(plain.encode()).hexdigest() in stored and not any(plain in h for h in stored)
        first = site.client()
        answer = site.try_login(first, code=codes[3].upper().replace("-", " "))  # as typed from paper
        assert answer.status_code == 303
        account = first.get(answer.headers["location"]).text
        assert "it cannot be used again" in account and "9 recovery codes left" in account
        assert site.try_login(site.client(), code=codes[3]).status_code == 400  # used up
        assert (OWNER, "logged in", "with a recovery code") in _audit(site.app)


def test_new_recovery_codes_replace_the_old_ones(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        _, old = set_up_code_app(site, client)
        token = csrf(client.get("/console/account").text)
        assert (
            client.post(
                "/console/account/recovery-codes", data={"csrf_token": token, "password": "nope nope nope"}
            ).status_code
            == 400
        )
        answer = client.post(
            "/console/account/recovery-codes", data={"csrf_token": token, "password": PASSWORD}
        )
        new = recovery_codes(answer.text)
        assert answer.status_code == 200 and len(new) == 10 and not set(new) & set(old)
        assert site.try_login(site.client(), code=old[0]).status_code == 400
        assert site.try_login(site.client(), code=new[0]).status_code == 303
        assert "shown only this once" in answer.text and answer.headers["cache-control"] == "no-store"


# ---------------------------------------------------------------- password and sessions


def test_changing_the_password_ends_her_other_sessions(tmp_path):
    with console(tmp_path) as site:
        laptop = site.login()
        phone = site.login()
        token = csrf(laptop.get("/console/account").text)
        form = {"csrf_token": token, "current_password": PASSWORD, "new_password": NEW_PASSWORD}
        mismatch = laptop.post(
            "/console/account/password", data={**form, "new_password_again": "something else!"}
        )
        assert mismatch.status_code == 400 and "not the same" in mismatch.text
        wrong = laptop.post(
            "/console/account/password",
            data={**form, "current_password": "not the password", "new_password_again": NEW_PASSWORD},
        )
        assert wrong.status_code == 400 and "password is not right" in wrong.text
        short = laptop.post(
            "/console/account/password", data={**form, "new_password": "short", "new_password_again": "short"}
        )
        assert short.status_code == 400 and "too short" in short.text
        assert not _signed_out(phone)
        changed = laptop.post("/console/account/password", data={**form, "new_password_again": NEW_PASSWORD})
        assert changed.status_code == 303
        assert _signed_out(phone)
        assert not _signed_out(laptop)
        assert site.try_login(site.client()).status_code == 400
        site.login(password=NEW_PASSWORD)
        assert (OWNER, "changed the password", None) in _audit(site.app)


def test_a_stolen_session_cannot_guess_the_password(tmp_path):
    """Each wrong password typed on the account page counts as a failed sign-in from that network."""
    with console(tmp_path) as site:
        client = site.login(ip="192.0.2.10")
        token = csrf(client.get("/console/account").text)
        headers = {"X-Forwarded-For": "192.0.2.10"}
        for n in range(10):
            answer = client.post(
                "/console/account/recovery-codes",
                data={"csrf_token": token, "password": f"guess number {n}"},
                headers=headers,
            )
            assert answer.status_code == 400
        answer = client.post(
            "/console/account/password",
            data={
                "csrf_token": token,
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
                "new_password_again": NEW_PASSWORD,
            },
            headers=headers,
        )
        assert answer.status_code == 400 and "too many wrong passwords" in answer.text
        assert site.try_login(site.client()).status_code == 303  # the old password still works


def test_her_sessions_are_listed_and_can_be_ended(tmp_path):
    with console(tmp_path) as site:
        laptop = site.login()
        phone = site.client(
            headers={"Origin": site.web.url, "User-Agent": "Mozilla/5.0 (iPhone) Safari/604.1"}
        )
        site.login(phone)
        tablet = site.login()
        page = laptop.get("/console/account").text
        assert page.count('name="session" value="') == 3  # two others, and "every other"
        assert "Safari on an iPhone" in page and "This one" in page
        handle = hashlib.sha256(phone.cookies.get(SESSION_COOKIE).encode()).hexdigest()
        token = csrf(page)
        ended = laptop.post("/console/account/sessions/end", data={"csrf_token": token, "session": handle})
        assert ended.status_code == 303 and _signed_out(phone)
        assert not _signed_out(tablet) and not _signed_out(laptop)
        # Another owner's session, or her own current one, cannot be ended this way.
        mine = hashlib.sha256(laptop.cookies.get(SESSION_COOKIE).encode()).hexdigest()
        laptop.post("/console/account/sessions/end", data={"csrf_token": token, "session": mine})
        assert not _signed_out(laptop)
        laptop.post("/console/account/sessions/end", data={"csrf_token": token, "session": "others"})
        assert _signed_out(tablet) and not _signed_out(laptop)
        assert [action for _, action, _ in _audit(site.app)].count("ended a session") == 2


def test_a_password_reset_on_the_server_ends_every_session(tmp_path):
    """Defect 16: sessions survived a password reset."""
    from click.testing import CliRunner

    from nurture.cli.main import cli

    with console(tmp_path) as site:
        client = site.login()
        assert not _signed_out(client)
        result = CliRunner().invoke(
            cli,
            ["--config", str(site.app.config.path), "owner", "reset-password", OWNER, "--password-stdin"],
            input=NEW_PASSWORD + "\n",
            env={"NURTURE_SECRET_KEY": "test-secret-key-0123456789"},
        )
        assert result.exit_code == 0, result.output
        assert _signed_out(client)


# ---------------------------------------------------------------- CSRF on every new form


ACCOUNT_FORMS = [
    (
        "/console/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    ),
    ("/console/account/sessions/end", {"session": "others"}),
    ("/console/account/code-app/start", {}),
    ("/console/account/code-app/confirm", {"code": "123456"}),
    ("/console/account/code-app/remove", {"password": PASSWORD}),
    ("/console/account/recovery-codes", {"password": PASSWORD}),
    ("/console/owners/invite", {"email": "b@riverbend.example"}),
    ("/console/owners/invitations/1/cancel", {}),
    ("/console/owners/1/remove", {}),
]


def test_every_new_form_needs_its_csrf_token_and_our_origin(tmp_path):
    with console(tmp_path) as site:
        client = site.login()
        other = site.login()
        token = csrf(client.get("/console/account").text)
        before = (_owner_row(site.app).password_hash, _owner_row(site.app).totp_pending_sealed)
        for path, form in ACCOUNT_FORMS:
            for data, headers in (
                (form, {}),
                ({**form, "csrf_token": "forged"}, {}),
                ({**form, "csrf_token": token}, {"Origin": "https://evil.example"}),
            ):
                assert client.post(path, data=data, headers=headers).status_code == 403, (path, headers)
        assert (_owner_row(site.app).password_hash, _owner_row(site.app).totp_pending_sealed) == before
        assert not _signed_out(other)
        assert not list(site.app.config.outbox_dir.glob("*.eml"))
        assert [action for _, action, _ in _audit(site.app)] == ["logged in", "logged in"]
