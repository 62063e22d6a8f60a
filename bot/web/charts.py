"""Server-rendered SVG bar charts: no JavaScript, no CDN, nothing for the CSP to block.

Colours are SVG presentation attributes (not `style=`), so a strict `style-src` does not touch
them. Every chart carries a <title> and <desc> for screen readers, and the pages show the same
numbers in a table beneath it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
HEIGHT = 260
MARGIN_LEFT = 48
MARGIN_RIGHT = 12
MARGIN_TOP = 28
MARGIN_BOTTOM = 72
# Colour-blind-safe (Okabe-Ito), readable on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A top for the axis whose four grid steps are round numbers (1, 2 or 5 × 10^n)."""
    if value <= 0:
        return 4.0
    step = value / 4
    exponent = math.floor(math.log10(step))
    # 2.5 only from tens up, so that small counts keep whole-number grid lines.
    for factor in (1, 2, 2.5, 5, 10) if exponent >= 1 else (1, 2, 5, 10):
        candidate = factor * 10**exponent
        if candidate >= step:
            return float(max(candidate, 1) * 4) if value >= 4 else 4.0
    return float(10 ** (exponent + 1) * 4)


def _short(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    y_max: float | None = None,
    unit: str = "",
) -> str:
    """A grouped vertical bar chart as an inline <svg> element (a safe string: all text escaped)."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = y_max if y_max is not None else _nice_max(max(values, default=0))
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(_describe(categories, series, unit))}</desc>',
    ]
    for i in range(5):
        value = top * i / 4
        y = MARGIN_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d4d9" stroke-width="1"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#444">{escape(_fmt(value) + unit)}</text>'
        )
    if not categories:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{MARGIN_TOP + plot_h / 2}" text-anchor="middle" '
            f'font-size="14" fill="#444">No data in this period yet</text>'
        )
    group_w = plot_w / max(len(categories), 1)
    bar_w = max(min(group_w * 0.8 / max(len(series), 1), 40), 1)
    label_every = max(1, math.ceil(len(categories) / 14))
    for ci, category in enumerate(categories):
        x0 = MARGIN_LEFT + ci * group_w + (group_w - bar_w * len(series)) / 2
        for si, one in enumerate(series):
            bar = one.values[ci]
            if bar is None:
                continue
            h = plot_h * min(bar, top) / top if top else 0
            x = x0 + si * bar_w
            y = MARGIN_TOP + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{escape(f'{one.name}, {category}: {_fmt(bar)}{unit}')}</title></rect>"
            )
        if ci % label_every == 0:
            cx = MARGIN_LEFT + ci * group_w + group_w / 2
            cy = MARGIN_TOP + plot_h + 14
            parts.append(
                f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" font-size="11" fill="#444" '
                f'transform="rotate(-35 {cx:.1f} {cy:.1f})">{escape(_short(category))}</text>'
            )
    legend_x = MARGIN_LEFT
    for si, one in enumerate(series):
        parts.append(
            f'<rect x="{legend_x}" y="8" width="12" height="12" '
            f'fill="{PALETTE[si % len(PALETTE)]}"/>'
            f'<text x="{legend_x + 16}" y="18" font-size="12" fill="#222">{escape(one.name)}</text>'
        )
        legend_x += 24 + 8 * len(one.name)
    parts.append("</svg>")
    return "".join(parts)


def _describe(categories: Sequence[str], series: Sequence[Series], unit: str) -> str:
    if not categories:
        return "No data in this period."
    chunks = []
    for ci, category in enumerate(categories):
        values = ", ".join(
            f"{s.name} {'none' if s.values[ci] is None else _fmt(s.values[ci] or 0) + unit}"
            for s in series
        )
        chunks.append(f"{category}: {values}")
    return "; ".join(chunks)
