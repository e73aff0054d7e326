"""A real headless Chromium, driven by Playwright's sync API.

Uses the system Chromium (Debian package ``chromium``) or ``NURTURE_TEST_CHROMIUM``;
never a Playwright-downloaded browser, so ``playwright install`` is not needed
(and must not be run: it downloads from the network).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

ENV_CHROMIUM = "NURTURE_TEST_CHROMIUM"
HINT = "apt-get install chromium; pip install playwright"
DEFAULT_VIEWPORT = {"width": 1280, "height": 800}

# Without these Chromium tries to reach the network (updates, sync, field
# trials, QUIC probes) and can hang or stall in a sandboxed CI box.
# --no-sandbox is required when running as root (and in most containers).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright cannot be had here; the message says why."""


def find_chromium() -> str | None:
    env = os.environ.get(ENV_CHROMIUM)
    if env:
        return env
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def browser_available() -> tuple[bool, str]:
    try:
        import playwright.sync_api  # noqa: F401 - imported only to learn whether it is installed
    except ImportError:
        return False, f"python package playwright is not installed ({HINT})"
    exe = find_chromium()
    if exe is None:
        return False, f"chromium not found ({HINT}, or set {ENV_CHROMIUM})"
    if not os.access(exe, os.X_OK):
        return False, f"{ENV_CHROMIUM}={exe} is not an executable file"
    return True, ""


class BrowserSession:
    """Owns the Playwright driver and one launched Browser."""

    def __init__(self) -> None:
        ok, reason = browser_available()
        if not ok:
            raise BrowserUnavailable(reason)
        from playwright.sync_api import sync_playwright

        self.executable = find_chromium()
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(
                executable_path=self.executable,
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=60_000,
            )
        except Exception as exc:
            self._pw.stop()
            raise BrowserUnavailable(f"launching {self.executable} failed: {exc}") from exc

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._pw.stop()


@contextlib.contextmanager
def playwright_loop_hidden() -> Iterator[None]:
    """Hide Playwright's event loop from asyncio for the duration.

    Playwright's sync API marks its private event loop as *running* in the
    main thread after every call (``asyncio._set_running_loop``). With a
    session-scoped browser that mark outlives the browser tests, and any later
    ``asyncio.run()`` / anyio / pytest-asyncio test in the same process fails
    with "cannot be called from a running event loop". Wrap tests that do not
    use the browser in this; the mark is restored afterwards because
    Playwright's dispatcher needs it on its next call.
    """
    loop = asyncio._get_running_loop()
    if loop is None:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(loop)


def artifacts_path(root: Path, test_name: str) -> Path:
    """test-artifacts/<test name> under root, made filesystem-safe, emptied and created."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", test_name).strip("_") or "test"
    path = root / "test-artifacts" / safe
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path
