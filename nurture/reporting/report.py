"""`nurture report`: one self-contained HTML file showing how the emails are doing.

No scripts, fonts, images or style sheets from anywhere: the charts are SVG
drawn here, in Python, and the page opens offline in any browser (or as an
attachment). Each chart has an SVG <title> and <desc> and is followed by a data
table holding the same numbers, for screen readers and for anyone who prefers
numbers to bars. The counts are those of `nurture stats` (see nurture.reporting.stats).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nurture.app import App
from nurture.sending.planning import zone
from nurture.reporting.stats import NOT_TRACKED, TRACKING_NOTES, DaySends, Row, sends_per_day, step_stats, totals

# Okabe-Ito colours: tell apart with every common colour-vision deficiency.
BLUE = "#0072B2"
SKY = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9dee3"

WIDTH = 760
LABEL_WIDTH = 250
BAR = 14
BAR_GAP = 3
GROUP_GAP = 14


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


TICKS = 4  # grid lines after zero


def _nice_max(value: float, *, whole: bool = True) -> float:
    """An axis maximum at or above `value` whose TICKS steps are round (1, 2, 2.5, 5 x 10^n).

    `whole`: counts, so every step is a whole number (no "1.25 emails" on the axis).
    """
    if value <= 0:
        return float(TICKS) if whole else 1.0
    wanted = value / TICKS
    exponent = math.floor(math.log10(wanted))
    for base in (1, 2, 2.5, 5, 10):
        step = base * 10.0**exponent
        if whole and (step < 1 or not float(step).is_integer()):
            continue
        if step >= wanted - 1e-12:
            return step * TICKS
    return 10.0 ** (exponent + 1) * TICKS  # pragma: no cover


def _truncate(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _legend(series: Sequence[Series], y: float) -> str:
    parts = []
    x = LABEL_WIDTH
    for item in series:
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{item.color}" rx="2"/>')
        parts.append(f'<text x="{x + 17}" y="{y}" class="legend">{_e(item.name)}</text>')
        x += 30 + 8 * len(item.name)
    return "".join(parts)


def _empty_svg(chart_id: str, title: str, message: str) -> str:
    return (
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} 80" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{_e(title)}</title><desc id="{chart_id}-desc">{_e(message)}</desc>'
        f'<text x="{WIDTH / 2}" y="45" text-anchor="middle" class="empty">{_e(message)}</text></svg>'
    )


def horizontal_bars(
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    percent: bool = False,
) -> str:
    """Grouped horizontal bars: one group per category, one bar per series."""
    if not categories or not any(v for s in series for v in s.values):
        return _empty_svg(chart_id, title, "Nothing to show yet: no emails have been sent in this period.")
    peak = max(v for s in series for v in s.values)
    top = _nice_max(peak, whole=not percent)
    plot = WIDTH - LABEL_WIDTH - 70
    group = len(series) * (BAR + BAR_GAP) - BAR_GAP
    legend_y = 20
    first = 40
    height = first + len(categories) * (group + GROUP_GAP) + 30
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{_e(title)}</title><desc id="{chart_id}-desc">{_e(desc)}</desc>',
        _legend(series, legend_y),
    ]
    axis_bottom = height - 24
    for tick in range(TICKS + 1):
        value = top * tick / TICKS
        x = LABEL_WIDTH + plot * tick / TICKS
        out.append(f'<line x1="{x:.1f}" y1="{first - 6}" x2="{x:.1f}" y2="{axis_bottom}" stroke="{GRID}"/>')
        label = _pct(value) if percent else _num(value)
        out.append(f'<text x="{x:.1f}" y="{axis_bottom + 16}" text-anchor="middle" class="tick">{_e(label)}</text>')
    for index, category in enumerate(categories):
        y0 = first + index * (group + GROUP_GAP)
        out.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y0 + group / 2 + 4:.1f}" text-anchor="end" class="category">'
            f"<title>{_e(category)}</title>{_e(_truncate(category))}</text>"
        )
        for position, item in enumerate(series):
            value = item.values[index]
            y = y0 + position * (BAR + BAR_GAP)
            width = plot * value / top if top else 0
            shown = _pct(value) if percent else _num(value)
            out.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{max(width, 0):.2f}" height="{BAR}" fill="{item.color}" rx="2">'
                f"<title>{_e(category)}: {_e(item.name)} {_e(shown)}</title></rect>"
            )
            out.append(f'<text x="{LABEL_WIDTH + width + 5:.1f}" y="{y + BAR - 3}" class="value">{_e(shown)}</text>')
    out.append(f'<line x1="{LABEL_WIDTH}" y1="{first - 6}" x2="{LABEL_WIDTH}" y2="{axis_bottom}" stroke="{MUTED}"/>')
    out.append("</svg>")
    return "".join(out)


def stacked_columns(chart_id: str, title: str, desc: str, days: Sequence[DaySends]) -> str:
    """Sends per day: a column per day, series and newsletters stacked."""
    if not days or not any(day.total for day in days):
        return _empty_svg(chart_id, title, "Nothing to show yet: no emails have been sent in this period.")
    series = (Series("Series emails", BLUE, [d.series for d in days]), Series("Newsletters", ORANGE, [d.newsletters for d in days]))
    top = _nice_max(max(day.total for day in days))
    left, right, first, height = 60, 20, 40, 300
    bottom = height - 50
    plot_w = WIDTH - left - right
    plot_h = bottom - first
    slot = plot_w / len(days)
    bar_w = max(2.0, min(36.0, slot * 0.7))
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{_e(title)}</title><desc id="{chart_id}-desc">{_e(desc)}</desc>',
    ]
    legend_x = left
    for item in series:
        out.append(f'<rect x="{legend_x}" y="10" width="12" height="12" fill="{item.color}" rx="2"/>')
        out.append(f'<text x="{legend_x + 17}" y="20" class="legend">{_e(item.name)}</text>')
        legend_x += 30 + 8 * len(item.name)
    for tick in range(TICKS + 1):
        value = top * tick / TICKS
        y = bottom - plot_h * tick / TICKS
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_e(_num(value))}</text>')
    every = max(1, math.ceil(len(days) / 12))
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        y = bottom
        for item in series:
            value = item.values[index]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            out.append(
                f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{item.color}">'
                f"<title>{day.day:%a %d %b}: {_e(item.name)} {_e(_num(value))}</title></rect>"
            )
        if index % every == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">{day.day:%d %b}</text>')
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - right}" y2="{bottom}" stroke="{MUTED}"/>')
    out.append("</svg>")
    return "".join(out)


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, numeric_from: int = 1) -> str:
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{_e(row[0])}</th>']
        cells += [f'<td class="{"num" if i >= numeric_from else ""}">{_e(v)}</td>' for i, v in enumerate(row[1:], start=1)]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="table-wrap"><table><caption>{_e(caption)}</caption>'
        f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _figure(chart_id: str, heading: str, intro: str, svg: str, table: str) -> str:
    return (
        f'<section class="chart" id="{chart_id}" aria-labelledby="{chart_id}-heading">'
        f'<h2 id="{chart_id}-heading">{_e(heading)}</h2><p class="intro">{_e(intro)}</p>'
        f'<figure><div class="chart-scroll">{svg}</div><figcaption><details><summary>The numbers behind this chart</summary>{table}</details></figcaption></figure>'
        "</section>"
    )


def _reading(row: Row, name: str) -> object:
    """An open or click count for a table cell: the number, or "not tracked"."""
    return getattr(row, name) if row.tracked(name) else NOT_TRACKED


def _reading_series(rows: Sequence[Row]) -> list[Series]:
    """Opened and Clicked bars, unless tracking is off (no bars of zeros that were never measured)."""
    if not rows or not rows[0].tracked("opened"):
        return []
    return [Series("Opened", GREEN, [r.opened for r in rows]), Series("Clicked", ORANGE, [r.clicked for r in rows])]


def _email_name(row: Row) -> str:
    if row.kind == "newsletter":
        return f"Newsletter: {row.subject}"
    return f"{row.step}. {row.subject}"


# -- the sections ---------------------------------------------------------------


def _funnel_sections(app: App, rows: Sequence[Row]) -> list[str]:
    sections = []
    for slug in sorted({row.stream for row in rows if row.kind == "step"}):
        steps = [row for row in rows if row.kind == "step" and row.stream == slug]
        campaign = app.campaigns.get(slug)
        title = campaign.title if campaign is not None else slug
        names = [_email_name(row) for row in steps]
        series = [
            Series("Sent", BLUE, [r.sent for r in steps]),
            Series("Delivered", SKY, [r.delivered for r in steps]),
            *_reading_series(steps),
        ]
        first = steps[0].sent if steps else 0
        last = steps[-1].sent if steps else 0
        desc = (
            f"For each of the {len(steps)} emails of {title}: how many were sent, delivered, opened and clicked. "
            f"{first} people got the first email and {last} the last."
        )
        chart_id = f"funnel-{_slug(slug)}"
        svg = horizontal_bars(chart_id + "-chart", f"Series funnel: {title}", desc, names, series)
        table = _table(
            f"{title}: counts per email",
            ["Email", "Sent", "Delivered", "Opened", "Clicked", "Reached (of step 1)"],
            [[n, r.sent, r.delivered, _reading(r, "opened"), _reading(r, "clicked"), _pct(r.sent / first) if first else "-"] for n, r in zip(names, steps)],
        )
        intro = (
            "How far people get through the series. Fewer sends on later emails is normal: people join at "
            "different times, and those who book or leave stop receiving it."
        )
        sections.append(_figure(chart_id, f"Series funnel: {title}", intro, svg, table))
    if not sections:
        svg = _empty_svg("funnel-none-chart", "Series funnel", "There is no series in campaigns/ yet.")
        sections.append(_figure("funnel-none", "Series funnel", "How far people get through each series.", svg, _table("Series", ["Email"], [])))
    return sections


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-") or "x"


def _days_section(days: Sequence[DaySends]) -> str:
    total = sum(day.total for day in days)
    desc = (
        f"Emails sent per day from {days[0].day:%d %B %Y} to {days[-1].day:%d %B %Y}: {total} in all, "
        "series emails and newsletters stacked."
        if days
        else "No emails sent in this period."
    )
    svg = stacked_columns("per-day-chart", "Emails sent per day", desc, days)
    table = _table(
        "Emails sent per day (practice time zone)",
        ["Day", "Series emails", "Newsletters", "Total"],
        [[f"{d.day:%a %d %b %Y}", d.series, d.newsletters, d.total] for d in days],
    )
    return _figure("per-day", "Emails sent per day", "Each column is one day in the practice's time zone.", svg, table)


def _rates_section(rows: Sequence[Row]) -> str:
    used = [row for row in rows if row.sent]
    names = [(_email_name(r) if r.kind == "newsletter" else f"{r.stream} {_email_name(r)}") for r in used]
    series = [
        Series("Unsubscribe rate", VERMILLION, [r.rate("unsubscribed") for r in used]),
        Series("Bounce rate", PURPLE, [r.rate("bounced") for r in used]),
    ]
    desc = "For each email sent: the share of its recipients who unsubscribed from it, and the share that bounced."
    svg = horizontal_bars("rates-chart", "Unsubscribe and bounce rates per email", desc, names, series, percent=True)
    table = _table(
        "Unsubscribe and bounce rates per email",
        ["Email", "Sent", "Unsubscribed", "Unsubscribe rate", "Bounced", "Bounce rate", "Spam complaints"],
        [[n, r.sent, r.unsubscribed, _pct(r.rate("unsubscribed")), r.bounced, _pct(r.rate("bounced")), r.complained] for n, r in zip(names, used)],
    )
    intro = (
        "A few unsubscribes after each email are healthy. Bounce rates above 2% or any spam complaints are worth "
        "a look: mailbox providers slow down or block senders with many of either."
    )
    return _figure("rates", "Unsubscribe and bounce rates per email", intro, svg, table)


def _newsletter_section(rows: Sequence[Row]) -> str:
    letters = [row for row in rows if row.kind == "newsletter"]
    names = [row.subject or row.label for row in letters]
    series = [
        Series("Sent", BLUE, [r.sent for r in letters]),
        Series("Delivered", SKY, [r.delivered for r in letters]),
        *_reading_series(letters),
        Series("Unsubscribed", VERMILLION, [r.unsubscribed for r in letters]),
    ]
    desc = f"{len(letters)} newsletter(s): how many were sent, delivered, opened, clicked, and led to an unsubscribe."
    if letters:
        svg = horizontal_bars("newsletters-chart", "Newsletter results", desc, names, series)
    else:
        svg = _empty_svg("newsletters-chart", "Newsletter results", "No newsletter has been sent in this period.")
    table = _table(
        "Newsletter results",
        ["Newsletter", "Sent", "Delivered", "Opened", "Open rate", "Clicked", "Click rate", "Unsubscribed"],
        [
            [n, r.sent, r.delivered, _reading(r, "opened"), _rate(r, "opened"), _reading(r, "clicked"), _rate(r, "clicked"), r.unsubscribed]
            for n, r in zip(names, letters)
        ],
    )
    return _figure("newsletters", "Newsletter results", "Each newsletter you scheduled, once it has gone out.", svg, table)


def _rate(row: Row, name: str) -> str:
    return _pct(row.rate(name)) if row.has_rate(name) else NOT_TRACKED if not row.tracked(name) else "-"


def _stats_table(rows: Sequence[Row]) -> str:
    headers = ["Email", "Sent", "Delivered", "Opened", "Clicked", "Bounced", "Complaints", "Unsubscribed"]
    body = []
    for row in rows:
        name = _email_name(row) if row.kind == "newsletter" else f"{row.stream} · {_email_name(row)}"
        cells = [name, _num(row.sent)]
        for field in ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"):
            value = getattr(row, field)
            if not row.has_rate(field):
                cells.append(row.shown(field))
            else:
                cells.append(f"{_num(value)} ({_pct(row.rate(field))})" if row.sent else _num(value))
        body.append(cells)
    return (
        '<section id="all-numbers" aria-labelledby="all-numbers-heading"><h2 id="all-numbers-heading">All the numbers</h2>'
        '<p class="intro">Counts, with each as a share of the emails sent in brackets. The same table as <code>nurture stats</code>.</p>'
        + _table("Results per email", headers, body)
        + "</section>"
    )


def _summary(rows: Sequence[Row], tracking: str) -> str:
    total = totals(list(rows))
    sent = total["sent"]

    def rate(name: str) -> str:
        if name in ("opened", "clicked") and tracking != "per_person":
            return NOT_TRACKED if tracking == "off" else f"{_num(total[name])} total"
        return _pct(total[name] / sent) if sent else "-"

    cards = [
        ("Emails sent", _num(sent)),
        ("Delivered", rate("delivered")),
        ("Opened", rate("opened")),
        ("Clicked", rate("clicked")),
        ("Unsubscribed", rate("unsubscribed")),
        ("Bounced", rate("bounced")),
        ("Spam complaints", _num(total["complained"])),
    ]
    items = "".join(f'<div class="card"><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>' for label, value in cards)
    return f'<section aria-label="Summary"><dl class="cards">{items}</dl></section>'


STYLE = f"""
:root {{ color-scheme: light; }}
* {{ box-sizing: border-box; }}
body {{ margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: {INK}; background: #f5f7fa; }}
main {{ max-width: 880px; margin: 0 auto; padding: 24px 16px 48px; }}
h1 {{ font-size: 1.7rem; margin: 0 0 4px; }}
h2 {{ font-size: 1.25rem; margin: 0 0 4px; }}
.meta, .intro, footer {{ color: {MUTED}; }}
.intro {{ margin: 0 0 12px; }}
section {{ background: #fff; border: 1px solid {GRID}; border-radius: 8px; padding: 18px 20px; margin: 18px 0; }}
section[aria-label="Summary"] {{ background: transparent; border: 0; padding: 0; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); gap: 10px; margin: 0; }}
.card {{ background: #fff; border: 1px solid {GRID}; border-radius: 8px; padding: 10px 12px; }}
.card dt {{ color: {MUTED}; font-size: .85rem; }}
.card dd {{ margin: 0; font-size: 1.4rem; font-weight: 600; }}
figure {{ margin: 0; }}
.chart-scroll {{ overflow-x: auto; }}
.chart-svg {{ display: block; min-width: 600px; }}
svg text {{ fill: {INK}; font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }}
svg .tick {{ fill: {MUTED}; font-size: 11px; }}
svg .value {{ font-size: 11px; }}
svg .empty {{ fill: {MUTED}; font-size: 15px; }}
details {{ margin-top: 8px; }}
summary {{ cursor: pointer; color: {BLUE}; }}
.table-wrap {{ overflow-x: auto; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 8px; font-size: .9rem; }}
caption {{ text-align: left; font-weight: 600; padding: 4px 0; }}
th, td {{ border-bottom: 1px solid {GRID}; padding: 5px 8px; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
thead th {{ background: #eef2f6; }}
@media print {{ body {{ background: #fff; }} details {{ display: block; }} section {{ break-inside: avoid; }} }}
"""


def render_report(app: App, *, since: datetime | None = None, now: datetime | None = None) -> str:
    """The report as one HTML string."""
    moment = now or datetime.now(timezone.utc)
    tz = zone(app.config.delivery.default_timezone)
    rows = step_stats(app, since=since)
    days = sends_per_day(app, since=since)
    practice = app.config.practice.name
    period = f"since {since.astimezone(tz):%d %B %Y}" if since else "since the first email"
    sections = [
        _summary(rows, app.config.delivery.tracking),
        *_funnel_sections(app, rows),
        _days_section(days),
        _rates_section(rows),
        _newsletter_section(rows),
        _stats_table(rows),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(practice)}: email report</title><style>{STYLE}</style></head><body><main>"
        f"<header><h1>Email report: {_e(practice)}</h1>"
        f'<p class="meta">All emails {period}. Made {moment.astimezone(tz):%d %B %Y at %H:%M} ({_e(tz.key)}).</p>'
        f'<p class="meta" id="tracking">{_e(TRACKING_NOTES[app.config.delivery.tracking])}</p></header>'
        + "".join(sections)
        + "<footer><p>Opens are approximate: some mail apps (Apple Mail among them) open every email on their own, "
        "and others block the tracking image. Clicks, bounces, complaints and unsubscribes are exact. "
        "Delivered, opened, clicked, bounced and complaints come from the provider's events; unsubscribes from "
        "those events and from the unsubscribe page, credited to the last email the person got before leaving.</p>"
        "</footer></main></body></html>\n"
    )


def write_report(app: App, out: Path, since: datetime | None = None, *, now: datetime | None = None) -> Path:
    """Write the report to `out` (folders created as needed) and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(render_report(app, since=since, now=now), encoding="utf-8")
    temp.replace(out)
    return out
