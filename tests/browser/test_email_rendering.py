"""Every shipped email in a real Chromium at phone width: no sideways scrolling, alt text
on every image, readable contrast in light and dark mode. Screenshots are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.content.preview import write_preview
from tests.support.factories import make_config

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}

# For each visible element holding text, its colour against the first opaque background
# behind it; returns the ones under WCAG AA (4.5:1, or 3:1 for large text).
CONTRAST_JS = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = ({r, g, b}) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255, a: 1}; };
  const bad = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    if (box.width === 0 || box.height === 0 || Number(style.opacity) === 0) continue;
    const fg = parse(style.color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    const text = el.textContent.trim().slice(0, 40);
    const colours = `${style.color} on rgb(${bg.r}, ${bg.g}, ${bg.b})`;
    if (ratio < need) bad.push(`${el.tagName} "${text}" ${ratio.toFixed(2)}:1 (${colours})`);
  }
  return bad;
}
"""


@pytest.fixture(scope="module")
def preview(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("preview")
    config = make_config(tmp)
    index = write_preview(config, tmp / "out", None)
    return index


def email_files(index: Path) -> list[Path]:
    files = sorted(p for p in index.parent.rglob("*.html") if p != index)
    assert len(files) >= 7, files  # five steps, a newsletter, the confirmation
    return files


def no_network(page) -> list[str]:
    """Block and record every request that is not the local file itself."""
    outside: list[str] = []

    def handle(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", handle)
    return outside


def test_every_email_fits_a_phone_and_has_alt_text(page, preview, artifacts_dir):
    page.set_viewport_size(PHONE)
    outside = no_network(page)
    for path in email_files(preview):
        name = f"{path.parent.name}-{path.stem}"
        page.goto(path.as_uri())
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE["width"], f"{name}: scrolls sideways ({scroll_width}px wide at 375px)"
        missing = page.eval_on_selector_all(
            "img", "els => els.filter(e => !(e.getAttribute('alt') || '').trim()).map(e => e.src)"
        )
        assert missing == [], f"{name}: images without alt text: {missing}"
        assert page.evaluate("document.documentElement.lang") == "en"
        page.screenshot(path=str(artifacts_dir / f"{name}-375.png"), full_page=True)
    assert outside == [], f"emails load outside resources: {outside}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_email_has_readable_contrast(browser, preview, artifacts_dir, scheme):
    context = browser.new_context(viewport=PHONE, color_scheme=scheme)
    try:
        page = context.new_page()
        problems = []
        for path in email_files(preview):
            name = f"{path.parent.name}-{path.stem}"
            page.goto(path.as_uri())
            problems += [f"{name}: {line}" for line in page.evaluate(CONTRAST_JS)]
            if scheme == "dark":
                page.screenshot(path=str(artifacts_dir / f"{name}-375-dark.png"), full_page=True)
                body = page.evaluate("getComputedStyle(document.body).backgroundColor")
                assert body != "rgb(255, 255, 255)", f"{name}: white page in dark mode"
        assert problems == [], "text under WCAG AA contrast:\n" + "\n".join(problems)
    finally:
        context.close()


def test_gallery_is_self_contained_and_shows_both_widths(page, preview, artifacts_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    outside = no_network(page)
    page.goto(preview.as_uri())
    widths = page.eval_on_selector_all(
        "iframe", "els => els.map(e => e.getBoundingClientRect().width - e.clientLeft * 2)"
    )
    assert len(widths) == 2 * len(email_files(preview))
    assert sorted(set(round(w) for w in widths)) == [375, 600]
    assert page.locator("text=Subject:").count() == len(email_files(preview))
    page.screenshot(path=str(artifacts_dir / "gallery.png"))
    assert outside == [], f"the gallery loads outside resources: {outside}"
