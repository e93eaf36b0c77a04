"""Line charts as inline SVG, drawn on the server so that the admin dashboard
needs no JavaScript and no CDN."""

import math
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 38, 26
LEGEND_COLUMNS, LEGEND_WIDTH = 4, 125
X_LABELS = 6
Y_INTERVALS = 4


@dataclass
class Series:
    name: str
    values: list  # one number per bucket, None where there is nothing to show
    color: str


def nice_ceiling(value):
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= value (1 for nothing)."""
    if value <= 0:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def format_number(value):
    return f"{value / 1000:.3g}k" if value >= 1000 else f"{value:.3g}"


def line_chart(title, times, series, unit=""):
    """An SVG chart of `series` over bucket start `times` (datetimes, UTC)."""
    count = len(times)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = nice_ceiling(max((v for s in series for v in s.values if v is not None), default=0))

    # Coordinates as text: format_html escapes its arguments into strings.
    def x(index):
        return f"{LEFT + plot_width * index / max(1, count - 1):.1f}"

    def y(value):
        return f"{TOP + plot_height * (1 - value / top_value):.1f}"

    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" dy="3" text-anchor="end" font-size="10" fill="#666">{}</text>',
        (
            (LEFT, y(v), WIDTH - RIGHT, y(v), LEFT - 4, y(v), format_number(v))
            for v in (top_value * i / Y_INTERVALS for i in range(Y_INTERVALS + 1))
        ),
    )
    step = max(1, count // X_LABELS)
    x_labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" font-size="10" fill="#666">{}</text>',
        ((x(i), HEIGHT - 8, f"{times[i]:%H:%M}") for i in range(0, count, step)),
    )
    lines = mark_safe("".join(_series_svg(s, times, x, y, unit) for s in series))
    legend = format_html_join(
        "",
        '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
        '<text x="{}" y="{}" font-size="11" fill="#333">{}</text>',
        (
            (column, row, s.color, column + 14, row + 9, s.name)
            for i, s in enumerate(series)
            for column, row in [(LEFT + (i % LEGEND_COLUMNS) * LEGEND_WIDTH, 4 + (i // LEGEND_COLUMNS) * 14)]
        ),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}">{}{}{}{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/></svg></figure>',
        title, WIDTH, HEIGHT, title, grid, x_labels, lines, legend,
        LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM,
    )


def _series_svg(series, times, x, y, unit):
    """Polylines through the consecutive known points (a gap where a value is
    None) and a dot with a hover title on each known point."""
    segments, current = [], []
    for index, value in enumerate(series.values):
        if value is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(f"{x(index)},{y(value)}")
    if current:
        segments.append(current)
    lines = format_html_join(
        "",
        '<polyline data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="1.8"/>',
        ((series.name, " ".join(points), series.color) for points in segments if len(points) > 1),
    )
    dots = format_html_join(
        "",
        '<circle data-series="{}" data-value="{}" cx="{}" cy="{}" r="2.2" fill="{}">'
        "<title>{} {}: {}{}</title></circle>",
        (
            (series.name, value, x(i), y(value), series.color, series.name, f"{times[i]:%H:%M}", format_number(value),
             unit)
            for i, value in enumerate(series.values)
            if value is not None
        ),
    )
    return lines + dots
