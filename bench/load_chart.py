"""A small SVG line chart for bench/load.py: panels stacked over one shared
time axis, each with its own y axis (linear, or log for latencies), a
legend, and vertical markers (phase boundaries). No dependencies."""

import math
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")


def _nice_step(span, ticks=6):
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _fmt(value):
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.2g}"


def render(title, x_max, panels, *, subtitle="", markers=(), width=1000, panel_height=190):
    """`panels`: [{"title", "unit", "log": bool, "series": [{"name", "points": [(x, y or None)], "dash": bool}]}].
    `markers`: [(x, label)] drawn as dashed vertical lines across every panel."""
    left, right, top, gap = 64, 190, 50 if subtitle else 34, 46
    plot_w = width - left - right
    height = top + len(panels) * (panel_height + gap) + 10
    x_max = max(x_max, 1e-9)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if subtitle:
        out.append(f'<text x="{left}" y="37" fill="#444">{escape(subtitle)}</text>')

    def sx(x):
        return left + plot_w * min(max(x, 0.0), x_max) / x_max

    x_step = _nice_step(x_max, 10)
    for index, panel in enumerate(panels):
        y0 = top + index * (panel_height + gap) + 16
        y1 = y0 + panel_height
        values = [y for s in panel["series"] for _, y in s["points"] if y is not None]
        log = panel.get("log", False)
        if log:
            positives = [v for v in values if v > 0]
            low = 10 ** math.floor(math.log10(min(positives))) if positives else 1.0
            high = 10 ** math.ceil(math.log10(max(positives))) if positives else 10.0
            if high <= low:
                high = low * 10
            lo_l, hi_l = math.log10(low), math.log10(high)

            def sy(y, lo_l=lo_l, hi_l=hi_l, y0=y0, y1=y1):
                if y is None or y <= 0:
                    return None
                return y1 - (y1 - y0) * (math.log10(y) - lo_l) / (hi_l - lo_l)

            ticks = [10 ** e for e in range(int(lo_l), int(hi_l) + 1)]
        else:
            high = max(values) if values else 1.0
            high = high * 1.08 if high > 0 else 1.0
            step = _nice_step(high, 5)
            high = step * math.ceil(high / step)

            def sy(y, high=high, y0=y0, y1=y1):
                if y is None:
                    return None
                return y1 - (y1 - y0) * min(max(y, 0.0), high) / high

            ticks = [step * i for i in range(int(round(high / step)) + 1)]
        out.append(f'<text x="{left}" y="{y0 - 6}" font-weight="bold">{escape(panel["title"])}'
                   f'<tspan font-weight="normal" fill="#555"> ({escape(panel.get("unit", ""))}'
                   f'{", log scale" if log else ""})</tspan></text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_height}" fill="none" stroke="#999"/>')
        for tick in ticks:
            y = sy(tick)
            if y is None:
                continue
            out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{_fmt(tick)}</text>')
        x = 0.0
        while x <= x_max + 1e-9:
            px = sx(x)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y1}" y2="{y1 + 4}" stroke="#999"/>')
            out.append(f'<text x="{px:.1f}" y="{y1 + 15}" text-anchor="middle" fill="#444">{_fmt(x)}</text>')
            x += x_step
        if index == len(panels) - 1:
            out.append(f'<text x="{left + plot_w / 2}" y="{y1 + 30}" text-anchor="middle">seconds since the phase began</text>')
        for mx, label in markers:
            px = sx(mx)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y1}" stroke="#888" stroke-dasharray="3,3"/>')
            if index == 0:
                anchor, tx = ("end", px - 3) if px > left + plot_w * 0.8 else ("start", px + 3)
                out.append(f'<text x="{tx:.1f}" y="{y0 + 11}" text-anchor="{anchor}" fill="#666">{escape(label)}</text>')
        for number, series in enumerate(panel["series"]):
            color = series.get("color") or PALETTE[number % len(PALETTE)]
            dash = ' stroke-dasharray="5,3"' if series.get("dash") else ""
            segment = []
            segments = []
            for px_, py_ in series["points"]:
                y = sy(py_)
                if y is None:
                    if segment:
                        segments.append(segment)
                    segment = []
                    continue
                segment.append(f"{sx(px_):.1f},{y:.1f}")
            if segment:
                segments.append(segment)
            for seg in segments:
                if len(seg) == 1:
                    cx, cy = seg[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="{color}"/>')
                else:
                    out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{" ".join(seg)}"/>')
            ly = y0 + 12 + number * 15
            out.append(f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 30}" y1="{ly - 4}" y2="{ly - 4}" '
                       f'stroke="{color}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{left + plot_w + 34}" y="{ly}">{escape(series["name"])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
