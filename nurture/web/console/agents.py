"""A session's browser in a few words ("Firefox on Windows"), so she can tell her sessions apart."""

from __future__ import annotations

# Checked in order: the first name found wins (Edge's and Opera's agents also say Chrome,
# Chrome's also says Safari).
BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("iPhone", "an iPhone"),
    ("iPad", "an iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "a Mac"),
    ("Macintosh", "a Mac"),
    ("CrOS", "a Chromebook"),
    ("Linux", "Linux"),
)


def describe_agent(agent: str | None) -> str:
    if not agent:
        return "an unknown browser"
    browser = next((name for mark, name in BROWSERS if mark in agent), "a browser")
    system = next((name for mark, name in SYSTEMS if mark in agent), None)
    return f"{browser} on {system}" if system else browser
