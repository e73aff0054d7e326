"""The report in a real headless Chromium: opens offline, every chart drawn, fits a phone.
Screenshots and the report itself are kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurture.reporting.report import write_report
from tests.support.factories import at, make_app
from tests.support.stats_dataset import build_dataset

pytestmark = pytest.mark.browser

CHARTS = ["funnel-kap-intro", "per-day", "rates", "newsletters"]

# Per chart: drawn bars (rect.bar with a visible size), paths/lines, and its SVG title and desc.
CHART_FACTS_JS = """
(ids) => ids.map((id) => {
  const section = document.getElementById(id);
  const svg = section && section.querySelector('svg');
  if (!svg) return {id, svg: false};
  const bars = [...svg.querySelectorAll('rect.bar')];
  const drawn = bars.filter((bar) => {
    const box = bar.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  });
  const box = svg.getBoundingClientRect();
  return {
    id, svg: true, width: box.width, height: box.height, bars: bars.length, drawn: drawn.length,
    lines: svg.querySelectorAll('line, path').length,
    title: (svg.querySelector('title') || {}).textContent || '',
    desc: (svg.querySelector('desc') || {}).textContent || '',
    role: svg.getAttribute('role'),
    rows: section.querySelectorAll('table tbody tr').length,
  };
})
"""


@pytest.fixture
def report_file(tmp_path: Path, artifacts_dir: Path) -> Path:
    app = make_app(tmp_path, **{"delivery.tracking": "per_person"})  # the data set ties opens to deliveries
    build_dataset(app)
    return write_report(app, artifacts_dir / "report.html", now=at("2026-12-06 12:00"))


def test_report_opens_offline_with_every_chart_drawn(page, artifacts_dir: Path, report_file: Path) -> None:  # type: ignore[no-untyped-def]
    requested: list[str] = []

    def only_the_file(route) -> None:  # type: ignore[no-untyped-def]
        requested.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_the_file)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report_file.as_uri())
    page.wait_for_load_state("load")

    facts = page.evaluate(CHART_FACTS_JS, CHARTS)
    for chart in facts:
        assert chart["svg"], chart
        assert chart["role"] == "img" and chart["title"] and chart["desc"], chart
        assert chart["width"] > 300 and chart["height"] > 60, chart
        assert chart["bars"] > 0 and chart["drawn"] > 0, chart
        assert chart["lines"] > 0, chart  # axes and grid lines
        assert chart["rows"] > 0, chart  # the data table behind it
    by_id = {chart["id"]: chart for chart in facts}
    assert by_id["per-day"]["drawn"] == 4  # Nov 20, Dec 1, Dec 3, Dec 4 have sends
    assert (
        by_id["newsletters"]["drawn"] == 5
    )  # one newsletter: sent, delivered, opened, clicked, unsubscribed
    assert page.title() == "Riverbend Integrative Therapy: email report"
    page.screenshot(path=str(artifacts_dir / "report-desktop.png"), full_page=True)

    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(artifacts_dir / "report-phone.png"), full_page=True)

    # The tables open, and show the same numbers as the bars.
    page.locator("#newsletters details summary").click()
    assert page.locator("#newsletters table").is_visible()
    assert "66.7%" in page.locator("#newsletters table").inner_text()

    assert requested == [report_file.as_uri()]  # nothing but the file itself was fetched
    assert errors == []
    assert (artifacts_dir / "report-desktop.png").stat().st_size > 10_000
