"""`make demo`: the whole job on a throwaway SQLite store, with nothing leaving the machine.

It works in ./demo/ (recreated each time): a few example.com people sign up in
several time zones, most confirm, the clock moves forward three weeks with a
send pass every half hour, a few opens, clicks and one unsubscribe come back
through the signed webhook path, the owner edits the live series and publishes
it (`nurture campaign publish`), and the owner's report and preview gallery
are written.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import yaml

from nurture.app import App
from nurture.audience.signup import confirm, subscribe
from nurture.config import load_config
from nurture.content.preview import write_preview
from nurture.demo_webhook import record_demo_events
from nurture.owners.accounts import add_owner
from nurture.reporting.report import write_report
from nurture.sending.sendpass import send_due
from nurture.series.drafts import load_draft
from nurture.series.publish import publish

ROOT = Path.cwd()
DEMO = ROOT / "demo"
START = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
DEMO_OWNER = ("owner@example.com", "demo-console-password")  # a throwaway store: printed on purpose
PEOPLE = [
    ("ana@example.com", "Ana", "America/Los_Angeles"),
    ("ben@example.com", "Ben", "America/New_York"),
    ("chloe@example.com", "Chloé", "Europe/London"),
    ("dev@example.com", "Dev", "Asia/Kolkata"),
    ("mere@example.com", "Mere", "Pacific/Auckland"),
    ("sam@example.com", None, None),  # no name, no zone: the fallbacks are used
    ("pat@example.com", "Pat", "America/Chicago"),  # never confirms: gets nothing more
]


def _project() -> Path:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir()
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["database"]["url"] = "sqlite:///nurture.db"
    data["delivery"]["transport"] = "outbox"
    data["delivery"]["outbox_dir"] = "outbox"
    data["delivery"]["tracking"] = "aggregate"  # the demo's made-up opens and clicks show as per-email totals
    for folder in ("campaigns", "templates"):
        shutil.copytree(ROOT / folder, DEMO / folder)
    path = DEMO / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _confirm_token(outbox: Path, name: str) -> str:
    message = message_from_bytes((outbox / name).read_bytes(), policy=default_policy)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"/confirm/([A-Za-z0-9_\-.]+)", text)
    if not found:
        raise SystemExit(f"demo: no confirmation link in {name}")
    return found.group(1)


def _edit_and_publish(app: App, moment: datetime) -> None:
    """The owner shortens the wait before the fourth email of the live series, then publishes it.

    Until published, the edit is a draft that changes nothing that goes out.
    """
    path = app.config.campaigns_dir / "kap-intro" / "campaign.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["steps"][3]["delay_days"] = 3
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    print(
        "demo: the owner shortens the wait before the fourth email to "
        "3 days, then runs: nurture campaign publish kap-intro --yes"
    )
    for line in publish(app, load_draft(app.config, "kap-intro"), moment).lines():
        print(f"demo:   {line}")


def main() -> int:
    os.environ.setdefault("NURTURE_SECRET_KEY", "demo-only-secret-key-do-not-use-in-production")
    config = load_config(_project())
    app = App.open(config)
    outbox = config.outbox_dir
    try:
        print(
            f"demo: a throwaway store at {DEMO / 'nurture.db'}; every email goes to {outbox}/ as an .eml file"
        )
        for email, name, zone in PEOPLE:
            subscribe(app, email, START, first_name=name, timezone=zone, source="demo signup form")
        confirmations = sorted(path.name for path in outbox.glob("*-confirm-*.eml"))
        print(
            f"demo: {len(PEOPLE)} people signed up; {len(confirmations)} "
            "double-opt-in confirmation emails are in the outbox"
        )
        for index, name in enumerate(confirmations[:-1]):
            confirm(
                app, _confirm_token(outbox, name), START + timedelta(minutes=5 + index), source="demo click"
            )
        print(f"demo: {len(confirmations) - 1} confirmed; one stays pending and gets nothing else")

        seen: set[int]
        moment, end, sent, seen = START, START + timedelta(days=21), 0, set()
        while moment <= end:
            sent += send_due(app, moment).sent
            if moment == START + timedelta(days=8):  # a week in: events come back, one person leaves
                for line in record_demo_events(app, moment, unsubscribe_one=True, seen=seen):
                    print(f"demo: {line}")
            if moment == START + timedelta(days=9):
                _edit_and_publish(app, moment)
            moment += timedelta(minutes=30)
        print(
            "demo: three weeks of send passes (every 30 minutes, each "
            f"person in their own 09:00-17:00): {sent} series emails sent"
        )
        for line in record_demo_events(app, end, unsubscribe_one=False, seen=seen):
            print(f"demo: {line}")

        report = write_report(app, DEMO / "report.html", now=end)
        gallery = write_preview(config, DEMO / "preview", None)
        print(f"demo: outbox:          {outbox}/ ({len(list(outbox.glob('*.eml')))} .eml files)")
        print(f"demo: preview gallery: {gallery}")
        print(f"demo: owner's report:  {report}")

        add_owner(app, *DEMO_OWNER, end)
        print("demo: the owner console, on this demo store:")
        print(
            f"demo:   NURTURE_SECRET_KEY={os.environ['NURTURE_SECRET_KEY']} "
            ".venv/bin/nurture --config demo/config.yaml serve"
        )
        print(
            f"demo:   then open http://127.0.0.1:{config.web.port}/console/ "
            f"and sign in as {DEMO_OWNER[0]} with the password {DEMO_OWNER[1]}"
        )
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
