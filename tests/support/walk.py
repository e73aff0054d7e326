"""Walking the console (and the reader's pages) in a real Chromium: every page checked the same way.

`Walk.go(path)` opens a console page, `Walk.submit(button)` presses a button or link and
waits for the page that answers; `Walk.check(name)`, on the page as it is: axe-core (from
the axe-playwright-python package, injected offline) finds no WCAG violation at 1280 px
nor at 375 px; at 375 px the page fits the screen and no word is split in the middle;
screenshots at both widths go to test-artifacts/. Meanwhile nothing may be fetched from
outside the server, and the browser may log no error (a CSP refusal is one).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

AXE = files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 375, "height": 800}

# Words (letters only) that wrap across two lines although they would fit on one: a word
# may break only when it is wider than its whole line (a long address or link).
SPLIT_WORDS = r"""
() => {
  const skip = "code, pre, textarea, input, select, svg, script, style, .addr, iframe";
  const split = [];
  const root = document.querySelector("main") || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip) || !parent.offsetParent) continue;
    const text = node.textContent;
    for (const found of text.matchAll(/\p{L}{2,}/gu)) {
      const range = document.createRange();
      range.setStart(node, found.index);
      range.setEnd(node, found.index + found[0].length);
      const rects = [...range.getClientRects()].filter((r) => r.width > 0);
      const lines = new Set(rects.map((r) => Math.round(r.top)));
      if (lines.size < 2) continue;
      const width = rects.reduce((sum, r) => sum + r.width, 0);
      const block = parent.closest("td, th, p, li, dd, dt, h1, h2, h3, label, caption, div, span") || parent;
      if (width < block.clientWidth) split.push(found[0] + " in <" + block.tagName.toLowerCase() + ">");
    }
  }
  return split;
}
"""


class Walk:
    def __init__(self, page: Any, base: str, artifacts: Path) -> None:
        self.page, self.base, self.artifacts = page, base, artifacts
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.checked: list[str] = []
        # Pages answered on purpose with these statuses (a wrong code: 400, a missing page: 404);
        # Chromium logs each as an error, which is not a problem here.
        self.expected_statuses: set[int] = set()
        page.on("console", self._console_message)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.route("**/*", self._only_ours)

    def _console_message(self, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        if any(f"status of {status} " in text for status in self.expected_statuses):
            return
        self.problems.append(text)

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
        """Press a button that posts a form, and wait for the page that answers.

        Scrolled into view first and given a moment: the email preview frames above
        the forms settle their height late, and a click aimed before that misses."""
        button.scroll_into_view_if_needed()
        self.page.wait_for_timeout(200)
        with self.page.expect_navigation():
            button.click()
        self.page.wait_for_load_state("load")

    def _axe(self, name: str, width: str) -> None:
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE)
        result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
        violations = [
            (v["id"], v["help"], [node["target"] for node in v["nodes"]][:3]) for v in result["violations"]
        ]
        assert violations == [], f"{name} at {width}: {json.dumps(violations, indent=1)}"

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        self._axe(name, "1280 px")
        page.screenshot(path=str(self.artifacts / f"{name}-1280.png"), full_page=True)
        page.set_viewport_size(NARROW)
        page.wait_for_timeout(100)  # a moment for the narrow layout (stacked tables) to settle
        try:
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= NARROW["width"], f"{name} is {width} px wide on a 375 px screen"
            split = page.evaluate(SPLIT_WORDS)
            assert split == [], f"{name} at 375 px splits words in the middle: {split[:10]}"
            self._axe(name, "375 px")
            page.screenshot(path=str(self.artifacts / f"{name}-375.png"), full_page=True)
        finally:
            page.set_viewport_size(WIDE)
        self.checked.append(name)
