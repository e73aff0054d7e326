"""A series' shape in the console: a new series (not sent until published), delays, order,
adding and removing emails through the versioned publish with its plan, pausing and
resuming, and throwing a draft away. Through HTTP against a real server."""

from __future__ import annotations

import html

from sqlalchemy import select

from nurture.sending.sendpass import send_due
from nurture.store import models as m
from nurture.store.db import reading
from tests.support.console import console, csrf
from tests.support.factories import active_subscribers


def _post(client, page_url, action_url, data=None):
    token = csrf(client.get(page_url).text)
    return client.post(action_url, data={"csrf_token": token, **(data or {})})


def _delays(page_html):
    """The delay inputs of the series page, by key, as shown."""
    import re

    return dict(re.findall(r'name="delay-([^"]+)" value="([^"]*)"', page_html))


def _version(app, slug):
    with reading(app.engine) as session:
        row = session.scalar(
            select(m.SeriesVersion)
            .where(m.SeriesVersion.campaign == slug)
            .order_by(m.SeriesVersion.version.desc())
        )
        return (
            None
            if row is None
            else (row.version, [(item["key"], item["delay_days"]) for item in row.snapshot["steps"]])
        )


def test_a_new_series_is_a_draft_until_published_then_it_is_sent(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        made = _post(
            client,
            "/console/series",
            "/console/series/create",
            {
                "title": "After a workshop",
                "slug": "after-workshop",
                "subject": "Thank you for coming",
                "trigger": "confirmed",
            },
        )
        assert (
            made.status_code == 303
            and made.headers["location"] == "/console/series/after-workshop?done=created"
        )
        folder = site.app.config.campaigns_dir / "after-workshop"
        assert (folder / ".unpublished").is_file()
        page = client.get(made.headers["location"]).text
        assert "Made here and not published yet" in page and "Thank you for coming" in page
        # A sending pass must not publish the starter text as version 1 by itself.
        send_due(site.app, site.clock.now)
        assert _version(site.app, "after-workshop") is None
        added = _post(
            client,
            "/console/series/after-workshop",
            "/console/series/after-workshop/add",
            {"subject": "What to read next", "delay": "2"},
        )
        assert added.status_code == 303 and added.headers["location"].startswith(
            "/console/series/after-workshop/2"
        )
        assert "starter text" in client.get(added.headers["location"]).text
        page = client.get("/console/series/after-workshop").text
        assert _delays(page) == {"01-welcome": "0", "02-what-to-read-next": "2"}
        assert "The plan: version 1" in page
        published = _post(
            client,
            "/console/series/after-workshop",
            "/console/series/after-workshop/publish",
            {"version": "1"},
        )
        assert published.status_code == 303, published.text
        assert _version(site.app, "after-workshop") == (
            1,
            [("01-welcome", 0.0), ("02-what-to-read-next", 2.0)],
        )
        assert not (folder / ".unpublished").exists()
        listed = client.get("/console/series").text
        assert "After a workshop" in listed and "version 1 going out" in listed
        taken = _post(
            client,
            "/console/series",
            "/console/series/create",
            {"title": "Again", "slug": "after-workshop", "subject": "x", "trigger": "manual"},
        )
        assert taken.status_code == 400 and "already a series called after-workshop" in taken.text


def test_delays_order_adding_and_removing_go_through_the_plan_and_publish(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)
        send_due(site.app, site.clock.now)  # both have email 1
        url = "/console/series/kap-intro"
        page = client.get(url).text
        delays = _delays(page)
        assert delays["02-the-neuroscience"] == "3"
        delays["02-the-neuroscience"] = "5"
        form = {f"delay-{key}": value for key, value in delays.items()}
        saved = _post(client, url, url + "/shape", {**form, "do": "save"})
        assert saved.status_code == 303
        moved = _post(client, url, url + "/shape", {**form, "do": "up:04-a-dosing-session"})
        assert moved.status_code == 303
        removed = _post(client, url, url + "/shape", {**form, "do": "remove:05-next-steps"})
        assert removed.status_code == 303
        added = _post(client, url, url + "/add", {"subject": "Questions people ask", "delay": "4"})
        assert added.status_code == 303
        plan = html.unescape(client.get(url).text)
        assert "delay 3 -> 5 day(s)" in plan
        assert "moved" in plan and "from step 3 to step 4" in plan  # email 4 went up past email 3
        assert "removed" in plan and "added" in plan and "Questions people ask" in plan
        assert _version(site.app, "kap-intro")[0] == 1  # nothing published yet
        published = _post(client, url, url + "/publish", {"version": "2", "who": "everyone"})
        assert published.status_code == 303
        version, steps = _version(site.app, "kap-intro")
        assert version == 2
        assert [key for key, _ in steps] == [
            "01-what-is-kap",
            "02-the-neuroscience",
            "04-a-dosing-session",
            "03-is-kap-safe",
            "05-questions-people-ask",
        ]
        assert dict(steps)["02-the-neuroscience"] == 5.0
        # An email added after one was removed never takes a key a version has used.
        page = client.get(url).text
        _post(
            client,
            url,
            url + "/shape",
            {**{f"delay-{k}": v for k, v in _delays(page).items()}, "do": "remove:05-questions-people-ask"},
        )
        again = _post(client, url, url + "/add", {"subject": "Questions people ask", "delay": "4"})
        assert again.status_code == 303
        assert "05-questions-people-ask-2" in _delays(client.get(url).text)


def test_a_bad_delay_is_refused_and_nothing_is_written(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        url = "/console/series/kap-intro"
        spec = site.app.config.campaigns_dir / "kap-intro" / "campaign.yaml"
        before = spec.read_text()
        form = {f"delay-{key}": value for key, value in _delays(client.get(url).text).items()}
        for bad in ("-1", "400", "three"):
            answer = _post(client, url, url + "/shape", {**form, "delay-03-is-kap-safe": bad, "do": "save"})
            assert answer.status_code == 400 and "Nothing changed: email 3: the delay must be" in answer.text
        assert spec.read_text() == before


def test_pause_holds_the_series_and_resume_lets_it_go_on(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        active_subscribers(site.app, 2, site.clock.now)
        url = "/console/series/kap-intro"
        paused = _post(client, url, url + "/pause")
        assert paused.status_code == 303
        assert "Paused." in client.get(url).text and "paused" in client.get("/console/series").text
        assert send_due(site.app, site.clock.now).sent == 0
        resumed = _post(client, url, url + "/resume")
        assert resumed.status_code == 303 and "Resumed" in client.get(resumed.headers["location"]).text
        assert send_due(site.app, site.clock.now).sent == 2
        with reading(site.app.engine) as session:
            actions = list(session.scalars(select(m.OwnerAuditEntry.action)))
        assert "paused a series" in actions and "resumed a series" in actions


def test_throwing_a_draft_away_puts_back_the_published_files(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        folder = site.app.config.campaigns_dir / "kap-intro"
        url = "/console/series/kap-intro"
        client.get(url)  # version 1 exists from the app's start
        before = {path.name: path.read_text() for path in folder.iterdir()}
        form = {f"delay-{key}": value for key, value in _delays(client.get(url).text).items()}
        _post(client, url, url + "/shape", {**form, "do": "down:01-what-is-kap"})
        _post(client, url, url + "/add", {"subject": "An extra one", "delay": "1"})
        (folder / "03-is-kap-safe.md").write_text(
            (folder / "03-is-kap-safe.md").read_text().replace("Safety", "Care")
        )
        assert "The plan: version 2" in client.get(url).text
        thrown = _post(client, url, url + "/discard")
        assert (
            thrown.status_code == 303 and "Draft thrown away" in client.get(thrown.headers["location"]).text
        )
        after = {path.name: path.read_text() for path in folder.iterdir()}
        assert set(after) == set(before)  # the draft's own email is gone
        for name, text in before.items():
            if name == "campaign.yaml":
                assert _delays(client.get(url).text) == _delays_of_yaml(text)
            else:
                assert _same_email(after[name], text), name
        assert "there is nothing to publish" in client.get(url).text


def _delays_of_yaml(text):
    import yaml

    steps = yaml.safe_load(text)["steps"]
    return {step["file"][:-3]: f"{step['delay_days']:g}" for step in steps}


def _same_email(one, other):
    from pathlib import Path

    from nurture.content.campaigns import email_from_text

    a, b = email_from_text(Path("x.md"), one), email_from_text(Path("x.md"), other)
    return a.front == b.front and a.body == b.body


def test_an_unpublished_series_made_here_can_be_deleted(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        _post(
            client,
            "/console/series",
            "/console/series/create",
            {"title": "Trial", "slug": "trial", "subject": "Hello", "trigger": "manual"},
        )
        gone = _post(client, "/console/series/trial", "/console/series/trial/discard")
        assert gone.status_code == 303 and gone.headers["location"] == "/console/series?done=removed"
        assert not (site.app.config.campaigns_dir / "trial").exists()
        # A series from the files, never published, is not removed from here.
        assert (
            _post(client, "/console/series/kap-intro", "/console/series/kap-intro/discard").status_code == 303
        )
        assert (site.app.config.campaigns_dir / "kap-intro").is_dir()


def test_a_settings_file_broken_by_hand_is_left_alone_and_the_page_says_so_plainly(tmp_path):
    with console(tmp_path, https=True) as site:
        client = site.login()
        url = "/console/series/kap-intro"
        form = {f"delay-{key}": value for key, value in _delays(client.get(url).text).items()}
        spec = site.app.config.campaigns_dir / "kap-intro" / "campaign.yaml"
        spec.write_text(spec.read_text() + "steps_typo: [\n")
        before = spec.read_text()
        answer = _post(client, url, url + "/shape", {**form, "do": "save"})
        assert answer.status_code == 400 and spec.read_text() == before
        assert "has a mistake made outside the console" in html.unescape(answer.text)
        assert "campaign.yaml" not in answer.text.split('id="main"')[1].split("The files of this series")[0]
