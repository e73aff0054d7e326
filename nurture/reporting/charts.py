"""The report's charts: SVG drawn in Python, nothing fetched from anywhere.

Every chart comes in two layouts: the wide one (760 units, labels left of the bars) and,
for phones, a narrow one (360 units, each label above its bars) that the report shows
below 600 px instead of shrinking the wide one until its text cannot be read.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

from nurture.reporting.stats import DaySends

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
NARROW = 360  # the phone layout's width
NOTHING_YET = "Nothing to show yet: no emails have been sent in this period."
LABEL_WIDTH = 250
BAR = 14
BAR_GAP = 3
GROUP_GAP = 14


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[float]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def num(value: float) -> str:
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
        parts.append(f'<text x="{x + 17}" y="{y}" class="legend">{esc(item.name)}</text>')
        x += 30 + 8 * len(item.name)
    return "".join(parts)


def empty_svg(chart_id: str, title: str, message: str, *, narrow: bool = False) -> str:
    if narrow:  # two short lines, so the text keeps its size on a phone
        head, _, tail = message.partition(": ")
        lines = [head + ":", tail] if tail else [message]
        text = "".join(
            f'<tspan x="{NARROW / 2}" dy="{0 if i == 0 else 20}">{esc(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        return (
            f'<svg class="chart-svg" viewBox="0 0 {NARROW} 80" width="100%" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
            f'<title id="{chart_id}-title">{esc(title)}</title><desc '
            f'id="{chart_id}-desc">{esc(message)}</desc>'
            f'<text x="{NARROW / 2}" y="35" text-anchor="middle" class="empty">{text}</text></svg>'
        )
    return (
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} 80" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{esc(title)}</title><desc id="{chart_id}-desc">{esc(message)}</desc>'
        f'<text x="{WIDTH / 2}" y="45" text-anchor="middle" class="empty">{esc(message)}</text></svg>'
    )


def horizontal_bars(
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    percent: bool = False,
    zeros_are_data: bool = False,
) -> str:
    """Grouped horizontal bars: one group per category, one bar per series.

    `zeros_are_data`: the categories are emails that were sent, so all-zero values
    (nobody unsubscribed, nothing bounced) are a result to draw, not "nothing yet".
    """
    if not categories or not (zeros_are_data or any(v for s in series for v in s.values)):
        return empty_svg(chart_id, title, NOTHING_YET)
    peak = max(v for s in series for v in s.values)
    top = _nice_max(peak, whole=not percent) if peak else (0.01 if percent else 1.0)
    plot = WIDTH - LABEL_WIDTH - 70
    group = len(series) * (BAR + BAR_GAP) - BAR_GAP
    legend_y = 20
    first = 40
    height = first + len(categories) * (group + GROUP_GAP) + 30
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{esc(title)}</title><desc id="{chart_id}-desc">{esc(desc)}</desc>',
        _legend(series, legend_y),
    ]
    axis_bottom = height - 24
    for tick in range(TICKS + 1):
        value = top * tick / TICKS
        x = LABEL_WIDTH + plot * tick / TICKS
        out.append(f'<line x1="{x:.1f}" y1="{first - 6}" x2="{x:.1f}" y2="{axis_bottom}" stroke="{GRID}"/>')
        label = pct(value) if percent else num(value)
        out.append(
            f'<text x="{x:.1f}" y="{axis_bottom + 16}" text-anchor="middle" class="tick">{esc(label)}</text>'
        )
    for index, category in enumerate(categories):
        y0 = first + index * (group + GROUP_GAP)
        out.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y0 + group / 2 + 4:.1f}" text-anchor="end" class="category">'
            f"<title>{esc(category)}</title>{esc(_truncate(category))}</text>"
        )
        for position, item in enumerate(series):
            value = item.values[index]
            y = y0 + position * (BAR + BAR_GAP)
            width = plot * value / top if top else 0
            shown = pct(value) if percent else num(value)
            out.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" '
                f'width="{max(width, 0):.2f}" height="{BAR}" fill="{item.color}" rx="2">'
                f"<title>{esc(category)}: {esc(item.name)} {esc(shown)}</title></rect>"
            )
            out.append(
                f'<text x="{LABEL_WIDTH + width + 5:.1f}" y="{y + BAR - 3}" class="value">{esc(shown)}</text>'
            )
    out.append(
        f'<line x1="{LABEL_WIDTH}" y1="{first - 6}" x2="{LABEL_WIDTH}" y2="{axis_bottom}" stroke="{MUTED}"/>'
    )
    out.append("</svg>")
    return "".join(out)


def narrow_bars(
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    percent: bool = False,
    zeros_are_data: bool = False,
) -> str:
    """`horizontal_bars` for a phone: each category's label on its own line above its bars,
    the bars the full width."""
    if not categories or not (zeros_are_data or any(v for s in series for v in s.values)):
        return empty_svg(chart_id, title, NOTHING_YET, narrow=True)
    top = _nice_max(max(v for s in series for v in s.values), whole=not percent)
    plot = NARROW - 70
    legend, legend_height = _wrapped_legend(series, NARROW)
    group = len(series) * (BAR + BAR_GAP) - BAR_GAP
    label = 18
    first = legend_height + 12
    height = first + len(categories) * (label + group + GROUP_GAP) + 26
    axis_bottom = height - 22
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {NARROW} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{esc(title)}</title><desc id="{chart_id}-desc">{esc(desc)}</desc>',
        legend,
    ]
    for tick in range(TICKS + 1):
        x = 2 + plot * tick / TICKS
        value = top * tick / TICKS
        out.append(f'<line x1="{x:.1f}" y1="{first}" x2="{x:.1f}" y2="{axis_bottom}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{x:.1f}" y="{axis_bottom + 15}" text-anchor="middle" '
            f'class="tick">{esc(pct(value) if percent else num(value))}</text>'
        )
    for index, category in enumerate(categories):
        y0 = first + index * (label + group + GROUP_GAP)
        out.append(
            f'<text x="2" y="{y0 + 13}" '
            f'class="category"><title>{esc(category)}</title>{esc(_truncate(category, 52))}</text>'
        )
        for position, item in enumerate(series):
            value = item.values[index]
            y = y0 + label + position * (BAR + BAR_GAP)
            width = plot * value / top if top else 0
            shown = pct(value) if percent else num(value)
            out.append(
                f'<rect class="bar" x="2" y="{y}" width="{max(width, 0):.2f}" '
                f'height="{BAR}" fill="{item.color}" rx="2">'
                f"<title>{esc(category)}: {esc(item.name)} {esc(shown)}</title></rect>"
            )
            out.append(f'<text x="{width + 7:.1f}" y="{y + BAR - 3}" class="value">{esc(shown)}</text>')
    out.append("</svg>")
    return "".join(out)


def _wrapped_legend(series: Sequence[Series], width: float) -> tuple[str, float]:
    """Legend entries left to right, wrapping onto a new line; returns (SVG, height used)."""
    parts = []
    x, y = 2.0, 14.0
    for item in series:
        needed = 30 + 8 * len(item.name)
        if x > 2 and x + needed > width:
            x, y = 2.0, y + 20
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{item.color}" rx="2"/>')
        parts.append(f'<text x="{x + 17}" y="{y}" class="legend">{esc(item.name)}</text>')
        x += needed
    return "".join(parts), y + 6


def stacked_columns(
    chart_id: str, title: str, desc: str, days: Sequence[DaySends], *, narrow: bool = False
) -> str:
    """Sends per day: a column per day, series and newsletters stacked. `narrow`: the phone
    layout (fewer day labels)."""
    if not days or not any(day.total for day in days):
        return empty_svg(chart_id, title, NOTHING_YET, narrow=narrow)
    width = NARROW if narrow else WIDTH
    series = (
        Series("Series emails", BLUE, [d.series for d in days]),
        Series("Newsletters", ORANGE, [d.newsletters for d in days]),
    )
    top = _nice_max(max(day.total for day in days))
    left, right, first, height = (44, 10, 40, 260) if narrow else (60, 20, 40, 300)
    bottom = height - 50
    plot_w = width - left - right
    plot_h = bottom - first
    slot = plot_w / len(days)
    bar_w = max(2.0, min(36.0, slot * 0.7))
    out = [
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{esc(title)}</title><desc id="{chart_id}-desc">{esc(desc)}</desc>',
    ]
    legend_x = left
    for item in series:
        out.append(f'<rect x="{legend_x}" y="10" width="12" height="12" fill="{item.color}" rx="2"/>')
        out.append(f'<text x="{legend_x + 17}" y="20" class="legend">{esc(item.name)}</text>')
        legend_x += 30 + 8 * len(item.name)
    for tick in range(TICKS + 1):
        value = top * tick / TICKS
        y = bottom - plot_h * tick / TICKS
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{esc(num(value))}</text>'
        )
    every = max(1, math.ceil(len(days) / (5 if narrow else 12)))
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
                f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" '
                f'width="{bar_w:.2f}" height="{h:.2f}" fill="{item.color}">'
                f"<title>{day.day:%a %d %b}: {esc(item.name)} {esc(num(value))}</title></rect>"
            )
        if index % every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{bottom + 16}" '
                f'text-anchor="middle" class="tick">{day.day:%d %b}</text>'
            )
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="{MUTED}"/>')
    out.append("</svg>")
    return "".join(out)
