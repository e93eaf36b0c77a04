"""Line charts as inline SVG, drawn on the server so that the admin dashboard
needs no JavaScript and no CDN."""

import math
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import slugify

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 38, 26
LEGEND_COLUMNS, LEGEND_WIDTH = 4, 125
X_LABELS = 6
Y_INTERVALS = 4
# Series of one chart differ in dash as well as colour, and each is drawn
# thinner than the one before, over it: where lines coincide (two statuses
# at zero, three pools of the same size) each still shows.
DASHES = ["", "7 4", "2 3", "9 3 2 3"]
LINE_WIDTH, WIDER_BELOW = 1.8, 1.5


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
    dashes = [DASHES[i % len(DASHES)] for i in range(len(series))]
    widths = [round(LINE_WIDTH + WIDER_BELOW * (len(series) - 1 - i), 1) for i in range(len(series))]
    step_width = plot_width / max(1, count - 1)
    clip = f"plot-{slugify(title)}"
    lines = mark_safe(
        "".join(_series_svg(s, dash, width, times, x, y, unit, step_width, clip)
                for s, dash, width in zip(series, dashes, widths))
    )
    legend = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}" stroke-dasharray="{}"/>'
        '<text x="{}" y="{}" font-size="11" fill="#333">{}</text>',
        (
            (column, row + 5, column + 22, row + 5, s.color, max(2, width), dash, column + 26, row + 9, s.name)
            for i, (s, dash, width) in enumerate(zip(series, dashes, widths))
            for column, row in [(LEFT + (i % LEGEND_COLUMNS) * LEGEND_WIDTH, 4 + (i // LEGEND_COLUMNS) * 14)]
        ),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}"><clipPath id="{}"><rect x="{}" y="{}" width="{}" height="{}"/></clipPath>{}{}{}{}'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/></svg></figure>',
        title, WIDTH, HEIGHT, title, clip, LEFT, TOP - 3, plot_width, plot_height + 6, grid, x_labels, lines, legend,
        LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM,
    )


def _series_svg(series, dash, width, times, x, y, unit, step_width, clip):
    """Polylines through the consecutive known points, with a gap where a
    value is None; a known point alone between gaps is a short level stroke
    one bucket wide, so it reads as part of the line and not as a dot. Each
    known point also has an invisible circle carrying its hover title."""
    segments, current = [], []
    for index, value in enumerate(series.values):
        if value is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        segments.append(current)

    def points(segment):
        if len(segment) > 1:
            return " ".join(f"{x(index)},{y(value)}" for index, value in segment)
        [(index, value)] = segment
        middle = float(x(index))
        return f"{middle - step_width / 2:.1f},{y(value)} {middle + step_width / 2:.1f},{y(value)}"

    lines = format_html_join(
        "",
        '<polyline data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="{}" stroke-dasharray="{}" '
        'stroke-linejoin="round" clip-path="url(#{})"/>',
        ((series.name, points(segment), series.color, width, dash, clip) for segment in segments),
    )
    hover_targets = format_html_join(
        "",
        '<circle data-series="{}" data-value="{}" cx="{}" cy="{}" r="4" fill="{}" fill-opacity="0">'
        "<title>{} {}: {}{}</title></circle>",
        (
            (series.name, value, x(i), y(value), series.color, series.name, f"{times[i]:%H:%M}", format_number(value),
             unit)
            for i, value in enumerate(series.values)
            if value is not None
        ),
    )
    return lines + hover_targets
