"""The throughput chart: jobs done and failed per minute as an inline SVG bar chart."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from ..backend import Activity

WIDTH = 720  # px, the SVG's own coordinate system (it scales to its box)
HEIGHT = 146
PLOT_TOP = 22
PLOT_BOTTOM = 118
PLOT_LEFT = 40
DONE_COLOUR = "#2e7d32"
FAILED_COLOUR = "#c62828"


def _nice_max(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at least ``value``: a readable axis top."""
    scale = 1
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * scale >= value:
                return mantissa * scale
        scale *= 10


def activity_svg(activity: Activity) -> str:
    """Bars per bucket: done (green) beside failed (red), the axis in counts per bucket."""
    buckets = len(activity.done)
    top = _nice_max(max([1, *activity.done, *activity.failed]))
    slot = (WIDTH - PLOT_LEFT - 4) / max(buckets, 1)
    bar = max(slot / 2 - 0.5, 0.5)
    plot = PLOT_BOTTOM - PLOT_TOP
    minutes = round(buckets * activity.bucket / 60)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="jobs done and failed per minute over the last {minutes} minutes" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{WIDTH - 2}" y2="{PLOT_BOTTOM}" '
        'stroke="#999"/>',
        f'<line x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{WIDTH - 2}" y2="{PLOT_TOP}" '
        'stroke="#ddd" stroke-dasharray="3 3"/>',
        f'<text x="{PLOT_LEFT - 6}" y="{PLOT_TOP + 4}" text-anchor="end">{top}</text>',
        f'<text x="{PLOT_LEFT - 6}" y="{PLOT_BOTTOM + 4}" text-anchor="end">0</text>',
    ]
    for index, (done, failed) in enumerate(zip(activity.done, activity.failed, strict=True)):
        x = PLOT_LEFT + 2 + index * slot
        start = datetime.fromtimestamp(activity.since + index * activity.bucket, timezone.utc)
        label = escape(f"{start:%H:%M} UTC: {done} done, {failed} failed")
        parts.append(f'<g><title>{label}</title>')
        for offset, value, colour in ((0.0, done, DONE_COLOUR), (bar, failed, FAILED_COLOUR)):
            if value:
                height = max(plot * value / top, 2.0)  # one job stays visible
                parts.append(f'<rect x="{x + offset:.1f}" y="{PLOT_BOTTOM - height:.1f}" '
                             f'width="{bar:.1f}" height="{height:.1f}" fill="{colour}"/>')
        parts.append(f'<rect x="{x:.1f}" y="{PLOT_TOP}" width="{slot:.1f}" height="{plot}" '
                     'fill="transparent"/></g>')
    left, right = PLOT_LEFT + 2, WIDTH - 2
    for x, anchor, text in ((left, "start", f"-{minutes} min"),
                            ((left + right) / 2, "middle", f"-{minutes // 2} min"),
                            (right, "end", "now")):
        parts.append(f'<text x="{x:.1f}" y="{PLOT_BOTTOM + 16}" text-anchor="{anchor}">'
                     f"{text}</text>")
    total_done, total_failed = sum(activity.done), sum(activity.failed)
    parts.append(f'<text x="{right}" y="{PLOT_TOP - 4}" text-anchor="end">'
                 f'<tspan fill="{DONE_COLOUR}">■ {total_done:,} done</tspan>  '
                 f'<tspan fill="{FAILED_COLOUR}">■ {total_failed:,} failed</tspan></text>')
    parts.append("</svg>")
    return "".join(parts)
