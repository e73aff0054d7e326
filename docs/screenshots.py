"""Remake the screenshots in docs/images/ from the demo, in a real headless Chromium.

    make demo
    .venv/bin/python docs/screenshots.py

Needs Playwright (installed with the test extras) and Debian's chromium
(/usr/bin/chromium, or NURTURE_TEST_CHROMIUM); it never downloads a browser.
It starts `nurture --config demo/config.yaml serve` on a free local port, signs in
as the demo owner, and photographs:

  console-today.png         the console's Today page
  console-email-check.png   an edited email's page: its check finding and its changes
  console-series-plan.png   the series page with that draft: the publish plan
  email.png                 the first email of the series, as a reader sees it
  console-settings.png      Settings, with the sending hours changed there
  console-add-people.png    Add people: one by hand, or a list from a file
  console-import-report.png an uploaded list's report, before it is imported
  console-series-shape.png  a series' emails: delays, order, adding one
  console-newsletter.png    a sent newsletter's page: its results by time zone
  console-drafts.png        Drafts, with their age
  console-code-app.png      setting up the code app: the QR code, the key, the confirming code
  console-recovery-codes.png  the recovery codes, shown once
  console-account.png       her account page with the code app on
  console-owners.png        the Owners page with an invitation sent

(After it, the demo owner has a code app: sign in to the demo again after `make demo`.)

To have something to show, it changes the demo's own throwaway copy first: three
example.com people are imported (so emails are due in the next 24 hours), the series
gets a draft (an http:// link in email 3, a shorter wait before email 5), and the
shipped winter newsletter is scheduled and sent.
Run `make demo` again afterwards for the demo as it was.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
IMAGES = ROOT / "docs" / "images"
OWNER = ("owner@example.com", "demo-console-password")  # the demo's throwaway account
DEMO_SECRET = "demo-only-secret-key-do-not-use-in-production"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"nurture serve stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nurture serve did not answer {url} within 30 s")


PEOPLE = """email,first_name,timezone,consented_at,consent_source
noa@example.com,Noa,America/Denver,2026-11-28T18:00:00Z,open day sign-up sheet
raj@example.com,Raj,America/Chicago,2026-11-28T18:05:00Z,open day sign-up sheet
lou@example.com,,Europe/Dublin,2026-11-28T18:10:00Z,open day sign-up sheet
"""


def prepare_demo(env: dict[str, str]) -> None:
    """Import a few people into the demo store and leave a draft in its copy of the series."""
    people = DEMO / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    nurture = ROOT / ".venv" / "bin" / "nurture"
    subprocess.run(
        [str(nurture), "--config", "demo/config.yaml", "import", str(people)], cwd=ROOT, env=env, check=True
    )
    series = DEMO / "campaigns" / "kap-intro"
    spec = series / "campaign.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("delay_days: 5", "delay_days: 4", 1), encoding="utf-8"
    )
    email = series / "03-is-kap-safe.md"
    head, body = email.read_text(encoding="utf-8").split("---\n", 2)[1:]
    email.write_text(f"---\n{head}---\nRead http://example.com/safety first. {body}", encoding="utf-8")
    demo = [str(nurture), "--config", "demo/config.yaml"]
    newsletter = "demo/campaigns/newsletters/2026-12-winter-note.md"
    at = ["--at", "2026-12-23 10:00", "--timezone", "subscriber", "--now", "2026-12-22T12:00:00Z"]
    subprocess.run([*demo, "newsletter", "schedule", newsletter, *at], cwd=ROOT, env=env, check=True)
    for hour in range(0, 48, 2):  # a pass every two hours while it is 10:00 somewhere
        day, clock = divmod(20 + hour, 24)
        moment = f"2026-12-{22 + day:02d}T{clock:02d}:00:00Z"
        subprocess.run(
            [*demo, "send-due", "--now", moment], cwd=ROOT, env=env, check=True, capture_output=True
        )


BAD_ROW_LIST = """email,first_name,timezone,consented_at,consent_source
ivy@example.com,Ivy,America/Denver,2026-11-28,open day sign-up sheet
ola@example.com,Ola,Europe/Oslo,2026-11-28,open day sign-up sheet
ana@example.com,Ana,,2026-11-28,open day sign-up sheet
kim@example,Kim,,2026-11-28,open day sign-up sheet
"""


def fix_link() -> None:
    """Mend the draft's http:// link (as the owner would after the check), so the plan can be published."""
    email = DEMO / "campaigns" / "kap-intro" / "03-is-kap-safe.md"
    text = email.read_text(encoding="utf-8")
    email.write_text(
        text.replace("Read http://example.com/safety first. ", "A short answer first: it depends. "),
        encoding="utf-8",
    )


def settle(page: Page) -> None:
    """Let the sandboxed email frames (srcdoc) finish painting."""
    for frame in page.frames:
        frame.wait_for_load_state("load")
    page.wait_for_timeout(300)


def account_pages(page: Page, base: str) -> None:
    """Set up the demo owner's code app and invite a second owner, photographing each step."""
    import pyotp  # deferred: only these screenshots compute a code

    page.goto(f"{base}/console/account")
    page.click("button:has-text('Set up a code app')")
    page.wait_for_url(f"{base}/console/account/code-app")
    page.screenshot(path=IMAGES / "console-code-app.png", full_page=True)
    secret = page.inner_text("code.secret").replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button:has-text('Confirm')")
    page.wait_for_selector("ul.codes")
    page.screenshot(path=IMAGES / "console-recovery-codes.png")
    page.goto(f"{base}/console/account")
    page.screenshot(path=IMAGES / "console-account.png")
    page.goto(f"{base}/console/owners")
    page.fill("#invite-email", "noor@example.com")
    page.click("button:has-text('Send the invitation')")
    page.wait_for_selector("text=Invitation sent")
    page.screenshot(path=IMAGES / "console-owners.png")


def main() -> int:
    if not (DEMO / "config.yaml").is_file():
        raise SystemExit("no demo/ here: run `make demo` first")
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("NURTURE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    IMAGES.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NURTURE_SECRET_KEY": DEMO_SECRET}
    nurture = ROOT / ".venv" / "bin" / "nurture"
    command = [str(nurture), "--config", "demo/config.yaml", "serve", "--port", str(port)]
    prepare_demo(env)
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(f"{base}/healthz", server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.goto(f"{base}/console/login")
            page.fill("#email", OWNER[0])
            page.fill("#password", OWNER[1])
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/console/")
            page.screenshot(path=IMAGES / "console-today.png")

            page.goto(f"{base}/console/series/kap-intro/3")
            settle(page)
            page.locator("h2", has_text="Check").first.evaluate("node => node.scrollIntoView()")
            page.screenshot(path=IMAGES / "console-email-check.png")

            fix_link()
            page.goto(f"{base}/console/series/kap-intro")
            page.locator("h2", has_text="Publishing").first.evaluate("node => node.scrollIntoView()")
            page.screenshot(path=IMAGES / "console-series-plan.png")

            page.goto(f"{base}/console/series/kap-intro")
            page.screenshot(path=IMAGES / "console-series-shape.png")

            page.goto(f"{base}/console/settings")
            page.fill("#delivery\\.send_window\\.start", "08:30")
            page.click("text=Save settings")
            page.wait_for_load_state("load")
            page.locator("legend", has_text="When emails go out").evaluate("node => node.scrollIntoView()")
            page.screenshot(path=IMAGES / "console-settings.png")

            page.goto(f"{base}/console/subscribers/add")
            page.screenshot(path=IMAGES / "console-add-people.png")
            listed = DEMO / "open-day.csv"
            listed.write_text(BAD_ROW_LIST, encoding="utf-8")
            page.set_input_files("#file", str(listed))
            page.click("text=Upload and check it")
            page.wait_for_selector("text=What importing it would do", timeout=30_000)
            page.screenshot(path=IMAGES / "console-import-report.png", full_page=True)

            page.goto(f"{base}/console/newsletters/1")
            page.locator("h2", has_text="Results").first.evaluate("node => node.scrollIntoView()")
            page.screenshot(path=IMAGES / "console-newsletter.png")

            page.goto(f"{base}/console/newsletters")
            page.fill("#name", "2027-01-new-year")
            page.click("text=Preview and check")
            page.wait_for_load_state("load")
            page.goto(f"{base}/console/drafts")
            page.screenshot(path=IMAGES / "console-drafts.png")

            account_pages(page, base)

            email = browser.new_page(viewport={"width": 640, "height": 800})
            email.goto((DEMO / "preview" / "kap-intro" / "01-what-is-kap.html").as_uri())
            settle(email)
            email.screenshot(path=IMAGES / "email.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for image in sorted(IMAGES.glob("*.png")):
        print(f"{image.relative_to(ROOT)}: {image.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
