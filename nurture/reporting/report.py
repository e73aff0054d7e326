"""`nurture report`: one self-contained HTML file showing how the emails are doing.

No scripts, fonts, images or style sheets from anywhere: the charts are SVG
drawn here, in Python, and the page opens offline in any browser (or as an
attachment). Each chart has an SVG <title> and <desc> and is followed by a data
table holding the same numbers, for screen readers and for anyone who prefers
numbers to bars. The counts are those of `nurture stats` (see nurture.reporting.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from nurture.app import App
from nurture.reporting.charts import (
    BLUE,
    GREEN,
    GRID,
    INK,
    MUTED,
    ORANGE,
    PURPLE,
    SKY,
    VERMILLION,
    Series,
    empty_svg,
    esc,
    horizontal_bars,
    narrow_bars,
    num,
    pct,
    stacked_columns,
)
from nurture.reporting.stats import (
    NOT_TRACKED,
    TRACKING_NOTES,
    DaySends,
    Row,
    sends_per_day,
    step_stats,
    totals,
)
from nurture.sending.planning import zone


def _table(
    caption: str, headers: Sequence[str], rows: Sequence[Sequence[object]], *, numeric_from: int = 1
) -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = [f'<th scope="row">{esc(row[0])}</th>']
        cells += [
            f'<td class="{"num" if i >= numeric_from else ""}" data-label="{esc(headers[i])}">{esc(v)}</td>'
            for i, v in enumerate(row[1:], start=1)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        # Focusable and named: on a narrow screen the table scrolls, and a keyboard must reach it.
        f'<div class="table-wrap" tabindex="0" role="region" aria-label="{esc(caption)}">'
        f"<table><caption>{esc(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _figure(chart_id: str, heading: str, intro: str, svg: str, table: str, narrow: str) -> str:
    """A chart section; `narrow` is the chart's phone layout, shown instead of `svg` below 600 px."""
    return (
        f'<section class="chart" id="{chart_id}" aria-labelledby="{chart_id}-heading">'
        f'<h2 id="{chart_id}-heading">{esc(heading)}</h2><p class="intro">{esc(intro)}</p>'
        f'<figure><div class="chart-wide">{svg}</div><div class="chart-narrow">{narrow}</div>'
        f"<figcaption><details><summary>The numbers behind this chart</summary>{table}</details></figcaption>"
        "</figure>"
        "</section>"
    )


def _reading(row: Row, name: str) -> object:
    """An open or click count for a table cell: the number, or "not tracked"."""
    return getattr(row, name) if row.tracked(name) else NOT_TRACKED


def _reading_series(rows: Sequence[Row]) -> list[Series]:
    """Opened and Clicked bars, unless tracking is off (no bars of zeros that were never measured)."""
    if not rows or not rows[0].tracked("opened"):
        return []
    return [
        Series("Opened", GREEN, [r.opened for r in rows]),
        Series("Clicked", ORANGE, [r.clicked for r in rows]),
    ]


def _email_name(row: Row) -> str:
    if row.kind == "newsletter":
        return f"Newsletter: {row.subject}"
    if row.kind == "repermission":
        return f"Re-permission: {row.subject}"
    # A removed step, or sends under an earlier subject, keep their own subject (see reporting.stats).
    return f"{row.step}. {row.subject}" + (f" ({row.note})" if row.note else "")


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
        live = [row for row in steps if not row.note] or steps  # the live version's steps, in order
        first = live[0].sent if live else 0
        last = live[-1].sent if live else 0
        desc = (
            f"For each of the {len(steps)} emails of {title}: "
            "how many were sent, delivered, opened and clicked. "
            f"{first} people got the first email and {last} the last."
        )
        chart_id = f"funnel-{_slug(slug)}"
        svg = horizontal_bars(chart_id + "-chart", f"Series funnel: {title}", desc, names, series)
        narrow = narrow_bars(chart_id + "-narrow", f"Series funnel: {title}", desc, names, series)
        table = _table(
            f"{title}: counts per email",
            ["Email", "Sent", "Delivered", "Opened", "Clicked", "Reached (of step 1)"],
            [
                [
                    n,
                    r.sent,
                    r.delivered,
                    _reading(r, "opened"),
                    _reading(r, "clicked"),
                    pct(r.sent / first) if first else "-",
                ]
                for n, r in zip(names, steps, strict=True)
            ],
        )
        intro = (
            "How far people get through the series. Fewer sends on later emails is normal: people join at "
            "different times, and those who book or leave stop receiving it."
        )
        sections.append(_figure(chart_id, f"Series funnel: {title}", intro, svg, table, narrow))
    if not sections:
        svg = empty_svg("funnel-none-chart", "Series funnel", "There is no series in campaigns/ yet.")
        narrow = empty_svg(
            "funnel-none-narrow", "Series funnel", "There is no series in campaigns/ yet.", narrow=True
        )
        sections.append(
            _figure(
                "funnel-none",
                "Series funnel",
                "How far people get through each series.",
                svg,
                _table("Series", ["Email"], []),
                narrow,
            )
        )
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
    narrow = stacked_columns("per-day-narrow", "Emails sent per day", desc, days, narrow=True)
    table = _table(
        "Emails sent per day (practice time zone)",
        ["Day", "Series emails", "Newsletters", "Total"],
        [[f"{d.day:%a %d %b %Y}", d.series, d.newsletters, d.total] for d in days],
    )
    return _figure(
        "per-day",
        "Emails sent per day",
        "Each column is one day in the practice's time zone.",
        svg,
        table,
        narrow,
    )


def _rates_section(rows: Sequence[Row]) -> str:
    used = [row for row in rows if row.sent]
    names = [(_email_name(r) if r.kind == "newsletter" else f"{r.stream} {_email_name(r)}") for r in used]
    series = [
        Series("Unsubscribe rate", VERMILLION, [r.rate("unsubscribed") for r in used]),
        Series("Bounce rate", PURPLE, [r.rate("bounced") for r in used]),
    ]
    desc = "For each email sent: the share of its recipients who unsubscribed from it, and the share that "
    desc += "bounced."
    svg = horizontal_bars(
        "rates-chart",
        "Unsubscribe and bounce rates per email",
        desc,
        names,
        series,
        percent=True,
        zeros_are_data=True,
    )
    narrow = narrow_bars(
        "rates-narrow",
        "Unsubscribe and bounce rates per email",
        desc,
        names,
        series,
        percent=True,
        zeros_are_data=True,
    )
    table = _table(
        "Unsubscribe and bounce rates per email",
        ["Email", "Sent", "Unsubscribed", "Unsubscribe rate", "Bounced", "Bounce rate", "Spam complaints"],
        [
            [
                n,
                r.sent,
                r.unsubscribed,
                pct(r.rate("unsubscribed")),
                r.bounced,
                pct(r.rate("bounced")),
                r.complained,
            ]
            for n, r in zip(names, used, strict=True)
        ],
    )
    intro = (
        "A few unsubscribes after each email are healthy. "
        "Bounce rates above 2% or any spam complaints are worth "
        "a look: mailbox providers slow down or block senders with many of either."
    )
    return _figure("rates", "Unsubscribe and bounce rates per email", intro, svg, table, narrow)


def _newsletter_section(rows: Sequence[Row]) -> str:
    letters = [row for row in rows if row.kind == "newsletter"]
    names = [row.subject or row.label for row in letters]
    series = [
        Series("Sent", BLUE, [r.sent for r in letters]),
        Series("Delivered", SKY, [r.delivered for r in letters]),
        *_reading_series(letters),
        Series("Unsubscribed", VERMILLION, [r.unsubscribed for r in letters]),
    ]
    desc = (
        f"{len(letters)} newsletter(s): how many were sent, delivered, opened, clicked, "
        "and led to an unsubscribe."
    )
    if letters:
        svg = horizontal_bars("newsletters-chart", "Newsletter results", desc, names, series)
        narrow = narrow_bars("newsletters-narrow", "Newsletter results", desc, names, series)
    else:
        svg = empty_svg(
            "newsletters-chart", "Newsletter results", "No newsletter has been sent in this period."
        )
        narrow = empty_svg(
            "newsletters-narrow",
            "Newsletter results",
            "No newsletter has been sent in this period.",
            narrow=True,
        )
    table = _table(
        "Newsletter results",
        ["Newsletter", "Sent", "Delivered", "Opened", "Open rate", "Clicked", "Click rate", "Unsubscribed"],
        [
            [
                n,
                r.sent,
                r.delivered,
                _reading(r, "opened"),
                _rate(r, "opened"),
                _reading(r, "clicked"),
                _rate(r, "clicked"),
                r.unsubscribed,
            ]
            for n, r in zip(names, letters, strict=True)
        ],
    )
    return _figure(
        "newsletters",
        "Newsletter results",
        "Each newsletter you scheduled, once it has gone out.",
        svg,
        table,
        narrow,
    )


def _rate(row: Row, name: str) -> str:
    return pct(row.rate(name)) if row.has_rate(name) else NOT_TRACKED if not row.tracked(name) else "-"


def _stats_table(rows: Sequence[Row]) -> str:
    headers = ["Email", "Sent", "Delivered", "Opened", "Clicked", "Bounced", "Complaints", "Unsubscribed"]
    body = []
    for row in rows:
        name = _email_name(row) if row.kind == "newsletter" else f"{row.stream} · {_email_name(row)}"
        cells = [name, num(row.sent)]
        for field in ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"):
            value = getattr(row, field)
            if not row.has_rate(field):
                cells.append(row.shown(field))
            else:
                cells.append(f"{num(value)} ({pct(row.rate(field))})" if row.sent else num(value))
        body.append(cells)
    return (
        '<section id="all-numbers" aria-labelledby="all-numbers-heading"><h2 '
        'id="all-numbers-heading">All the numbers</h2>'
        '<p class="intro">Counts, with each as a share of the emails sent '
        "in brackets. The same table as <code>nurture stats</code>.</p>"
        + _table("Results per email", headers, body)
        + "</section>"
    )


def _summary(rows: Sequence[Row], tracking: str) -> str:
    total = totals(list(rows))
    sent = total["sent"]

    def rate(name: str) -> str:
        if name in ("opened", "clicked") and tracking != "per_person":
            return NOT_TRACKED if tracking == "off" else f"{num(total[name])} total"
        return pct(total[name] / sent) if sent else "-"

    cards = [
        ("Emails sent", num(sent)),
        ("Delivered", rate("delivered")),
        ("Opened", rate("opened")),
        ("Clicked", rate("clicked")),
        ("Unsubscribed", rate("unsubscribed")),
        ("Bounced", rate("bounced")),
        ("Spam complaints", num(total["complained"])),
    ]
    items = "".join(
        f'<div class="card"><dt>{esc(label)}</dt><dd>{esc(value)}</dd></div>' for label, value in cards
    )
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
section {{ background: #fff; border: 1px solid {GRID}; border-radius: 8px;
           padding: 18px 20px; margin: 18px 0; }}
section[aria-label="Summary"] {{ background: transparent; border: 0; padding: 0; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); gap: 10px; margin: 0; }}
.card {{ background: #fff; border: 1px solid {GRID}; border-radius: 8px; padding: 10px 12px; }}
.card dt {{ color: {MUTED}; font-size: .85rem; }}
.card dd {{ margin: 0; font-size: 1.4rem; font-weight: 600; }}
figure {{ margin: 0; }}
.chart-svg {{ display: block; }}
.chart-narrow {{ display: none; }}
svg text {{ fill: {INK};
            font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }}
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
@media (max-width: 600px) {{
  main {{ padding: 16px 8px 32px; }}
  section {{ padding: 14px 12px; }}
  .chart-wide {{ display: none; }}
  .chart-narrow {{ display: block; }}
  /* Tables become one block per row, each cell labelled, so no column is cut off. */
  thead {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }}
  table, tbody, tr, th, td {{ display: block; width: 100%; }}
  caption {{ display: block; }}
  tr {{ border-bottom: 2px solid {GRID}; padding: 4px 0; }}
  tbody th {{ border: 0; font-weight: 600; }}
  td, td.num {{ display: flex; justify-content: space-between; gap: 12px;
               border: 0; padding: 2px 8px; white-space: normal; }}
  td::before {{ content: attr(data-label); color: {MUTED}; text-align: left; }}
}}
@media print {{
  body {{ background: #fff; }} details {{ display: block; }} section {{ break-inside: avoid; }}
}}
"""


def report_sections(app: App, *, since: datetime | None = None) -> list[str]:
    """The report's sections as HTML fragments (the console shows them in its own page)."""
    rows = step_stats(app, since=since)
    days = sends_per_day(app, since=since)
    return [
        _summary(rows, app.config.delivery.tracking),
        *_funnel_sections(app, rows),
        _days_section(days),
        _rates_section(rows),
        _newsletter_section(rows),
        _stats_table(rows),
    ]


def render_report(app: App, *, since: datetime | None = None, now: datetime | None = None) -> str:
    """The report as one HTML string."""
    moment = now or datetime.now(UTC)
    tz = zone(app.config.delivery.default_timezone)
    practice = app.config.practice.name
    period = f"since {since.astimezone(tz):%d %B %Y}" if since else "since the first email"
    sections = report_sections(app, since=since)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(practice)}: email report</title><style>{STYLE}</style></head><body><main>"
        f"<header><h1>Email report: {esc(practice)}</h1>"
        f'<p class="meta">All emails {period}. Made '
        f"{moment.astimezone(tz):%d %B %Y at %H:%M} ({esc(tz.key)}).</p>"
        f'<p class="meta" id="tracking">{esc(TRACKING_NOTES[app.config.delivery.tracking])}</p></header>'
        + "".join(sections)
        + "<footer><p>Opens are approximate: some mail apps (Apple Mail among them) open every email on "
        "their own, and others block the tracking image. Clicks, bounces, complaints and unsubscribes are "
        "exact. Delivered, opened, clicked, bounced and complaints come from the provider's events; "
        "unsubscribes from those events and from the unsubscribe page, credited to the last email the "
        "person got before leaving.</p>"
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
