"""The owner's pages fit a phone: at 375 px the preview gallery and the report scroll only
downwards, no element reaches past the right edge, and every email frame shows its whole
email (no inner scrolling) at the width it is labelled with. Screenshots are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.content.preview import write_preview
from nurture.reporting.report import write_report
from tests.support.factories import at, make_app, make_config
from tests.support.stats_dataset import build_dataset

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}

# Visible elements whose box reaches outside [0, viewport width], and elements that scroll
# sideways inside themselves (content cut off behind a scrollbar).
OUTSIDE_JS = """
() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const classes = el.className && typeof el.className === 'string' ? '.' + el.className : '';
    const name = el.tagName + (el.id ? '#' + el.id : '') + classes;
    if (box.left < -0.5 || box.right > width + 0.5) {
      out.push(`${name} spans ${box.left.toFixed(1)}..${box.right.toFixed(1)}`);
    }
    // e.g. the tables' visually hidden header row
    const screenReaderOnly = box.width <= 1 && box.height <= 1;
    const scrolls = ['auto', 'scroll', 'hidden'].includes(style.overflowX);
    if (!screenReaderOnly && scrolls && el.scrollWidth > el.clientWidth + 1) {
      out.push(`${name} hides ${el.scrollWidth - el.clientWidth}px sideways`);
    }
  }
  return out;
}
"""

# Per email frame: the width its email is laid out at, and whether the email fits the frame.
FRAMES_JS = """
() => [...document.querySelectorAll('iframe')].map((frame) => {
  const win = frame.contentWindow, doc = frame.contentDocument;
  return {
    title: frame.title, labelled: Number(frame.dataset.width), inner: win.innerWidth,
    tall: doc.documentElement.scrollHeight, shown: win.innerHeight, wide: doc.documentElement.scrollWidth,
  };
})
"""


def fits_the_phone(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("window.innerWidth") == PHONE["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"], (
        f"the page scrolls sideways: {scroll_width}px wide at {PHONE['width']}px"
    )
    outside = page.evaluate(OUTSIDE_JS)
    assert outside == [], "cut off or outside the screen:\n" + "\n".join(outside[:20])


def test_the_preview_gallery_fits_a_phone_with_every_email_whole(
    page, tmp_path: Path, artifacts_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    index = write_preview(make_config(tmp_path), tmp_path / "preview", None)
    page.set_viewport_size(PHONE)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    fits_the_phone(page)
    frames = page.evaluate(FRAMES_JS)
    assert len(frames) >= 14  # 7 emails, two widths each
    for frame in frames:
        assert abs(frame["inner"] - frame["labelled"]) <= 1, (
            frame
        )  # still laid out at 600 / 375 px (give or take zoom rounding), only scaled
        assert frame["tall"] <= frame["shown"] + 1, (
            f"{frame['title']}: cut off at the bottom ({frame['tall']} > {frame['shown']})"
        )
        assert frame["wide"] <= frame["inner"], frame
    assert max(frame["tall"] for frame in frames) > 900  # the old fixed 900 px frame would have cut these
    page.screenshot(path=str(artifacts_dir / "gallery-375.png"), full_page=True)


def test_the_report_fits_a_phone_with_charts_and_tables_whole(
    page, tmp_path: Path, artifacts_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, **{"delivery.tracking": "per_person"})
    build_dataset(app)
    report = write_report(app, artifacts_dir / "report.html", now=at("2026-12-06 12:00"))
    page.set_viewport_size(PHONE)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    for summary in page.locator("details summary").all():
        summary.click()  # open every table behind a chart
    fits_the_phone(page)
    shown = page.eval_on_selector_all(
        "svg.chart-svg",
        "els => els.filter(e => e.getBoundingClientRect().width > 0).map(e => e.closest('div').className)",
    )
    assert shown and set(shown) == {"chart-narrow"}, (
        shown
    )  # the phone layout of each chart, not a shrunken wide one
    font = page.evaluate(
        "() => Math.min(...[...document.querySelectorAll('.chart-narrow svg text')]"
        ".filter(t => t.getBoundingClientRect().height > 0).map(t => t.getBoundingClientRect().height))"
    )
    assert font >= 9, f"chart text shrinks to {font:.1f}px on a phone"
    page.screenshot(path=str(artifacts_dir / "report-375.png"), full_page=True)
