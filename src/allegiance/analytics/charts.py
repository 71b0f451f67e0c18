"""A tiny dependency-free SVG line-chart writer (tracking charts, dashboards).

``line_chart([Series("actual", xs, ys), Series("model", xs, ys2, dashed=True)], title=...)``
returns a standalone SVG document: axes with "nice" ticks, one polyline per series, a legend,
a title, axis labels and optional vertical markers (for example the end of a calibration period).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f4e99", "#d1495b", "#2e8b57", "#e69f00", "#6a3d9a", "#555555")


@dataclass(frozen=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str | None = None
    dashed: bool = False

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys):
            raise ValueError(f"series {self.name!r}: xs and ys differ in length")


@dataclass(frozen=True)
class Marker:
    x: float
    label: str


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick range must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        high = low + 1.0
    raw = (high - low) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    count = math.ceil((high - first) / step - 1e-9)
    return [round(first + i * step, 10) for i in range(count + 1)]


def _label(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    markers: Sequence[Marker] = (),
    width: int = 720,
    height: int = 420,
) -> str:
    """Render the series as one SVG line chart and return the document text."""
    points = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True)]
    if not points:
        raise ValueError("nothing to draw")
    x_ticks = nice_ticks(min(p[0] for p in points), max(p[0] for p in points))
    y_ticks = nice_ticks(min(0.0, min(p[1] for p in points)), max(p[1] for p in points))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, right, top, bottom = 70, 20, 44, 56
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    for t in y_ticks:
        y = sy(t)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>'
        )
    for t in x_ticks:
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 5}" '
            'stroke="#333333"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{_label(t)}</text>'
        )
    out.append(
        f'<path d="M{left},{top} V{top + plot_h} H{left + plot_w}" fill="none" stroke="#333333"/>'
    )
    for m in markers:
        x = sx(m.x)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#888888" '
            'stroke-dasharray="2,3"/>'
        )
        out.append(f'<text x="{x + 4:.1f}" y="{top + 12}" fill="#555555">{escape(m.label)}</text>')
    if x_label:
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 14}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
    if y_label:
        cy = top + plot_h / 2
        out.append(
            f'<text x="16" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 16 {cy:.1f})">{escape(y_label)}</text>'
        )
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6,4"' if s.dashed else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(s.xs, s.ys, strict=True))
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        ly = top + 14 + 18 * i
        out.append(
            f'<line x1="{left + 14}" y1="{ly}" x2="{left + 44}" y2="{ly}" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{left + 50}" y="{ly + 4}">{escape(s.name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    y_label: str = "",
    width: int = 720,
    height: int = 420,
) -> str:
    """Grouped vertical bars: one group per label, one bar per series; returns the SVG text."""
    if not labels or not series:
        raise ValueError("nothing to draw")
    for name, values in series:
        if len(values) != len(labels):
            raise ValueError(f"series {name!r}: one value per label is needed")
    values = [v for _, vs in series for v in vs]
    y_ticks = nice_ticks(min(0.0, min(values)), max(0.0, max(values)))
    y0, y1 = y_ticks[0], y_ticks[-1]
    left, right, top, bottom = 70, 20, 44, 70
    plot_w, plot_h = width - left - right, height - top - bottom

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    group_w = plot_w / len(labels)
    bar_w = group_w * 0.8 / len(series)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{width / 2:.1f}" y="24" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    for t in y_ticks:
        y = sy(t)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    zero = sy(0.0)
    for i, label in enumerate(labels):
        gx = left + i * group_w + group_w * 0.1
        for j, (name, vs) in enumerate(series):
            color = PALETTE[j % len(PALETTE)]
            y = sy(vs[i])
            top_y, h = min(y, zero), abs(zero - y)
            out.append(
                f'<rect x="{gx + j * bar_w:.1f}" y="{top_y:.1f}" width="{bar_w * 0.95:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(name)} {escape(label)}: '
                f"{_label(vs[i])}</title></rect>"
            )
        out.append(
            f'<text x="{left + (i + 0.5) * group_w:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append(
        f'<path d="M{left},{top} V{top + plot_h} H{left + plot_w}" fill="none" stroke="#333333"/>'
    )
    if y_label:
        cy = top + plot_h / 2
        out.append(
            f'<text x="16" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 16 {cy:.1f})">{escape(y_label)}</text>'
        )
    if len(series) > 1:
        for j, (name, _) in enumerate(series):
            lx = left + 10 + j * 150
            out.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"/>')
            out.append(f'<text x="{lx + 18}" y="{height - 12}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
