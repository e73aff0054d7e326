"""A walk through the console in a real Chromium: each page checked by axe-core at 1280 and
375 px, photographed at both widths, and required to fit a 375 px screen; nothing may be
fetched from outside the server, and no script or CSP error may happen."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

AXE = files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDTHS = (1280, 375)


class ConsoleWalk:
    def __init__(self, page: Any, base: str, artifacts: Path) -> None:
        self.page, self.base, self.artifacts = page, base, artifacts
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.checked: list[str] = []
        page.on(
            "console", lambda message: self.problems.append(message.text) if message.type == "error" else None
        )
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.route("**/*", self._only_ours)

    def _only_ours(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith(("about:", "data:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")

    def submit(self, button: Any) -> None:
        """Press a button that posts a form, and wait for the page that answers."""
        button.scroll_into_view_if_needed()
        self.page.wait_for_timeout(150)
        with self.page.expect_navigation():
            button.click()
        self.page.wait_for_load_state("load")

    def axe(self, name: str, width: int) -> None:
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE)
        result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
        violations = [
            (v["id"], v["help"], [node["target"] for node in v["nodes"]][:3]) for v in result["violations"]
        ]
        assert violations == [], f"{name} at {width} px: {json.dumps(violations, indent=1)}"

    def check(self, name: str) -> None:
        """axe-core, a screenshot and the page's width, at 1280 and then 375 px."""
        page = self.page
        page.wait_for_load_state("load")
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            page.wait_for_timeout(100)
            self.axe(name, width)
            page.screenshot(path=str(self.artifacts / f"{name}-{width}.png"), full_page=True)
            scrolled = page.evaluate("document.documentElement.scrollWidth")
            assert scrolled <= width, f"{name} is {scrolled} px wide on a {width} px screen"
        page.set_viewport_size({"width": 1280, "height": 800})
        self.checked.append(name)
