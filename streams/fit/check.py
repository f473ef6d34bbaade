"""The calibration/holdout check: predicted against actual repeat order days in the holdout,
per calibration frequency (x), and its plot as a self-contained HTML page (inline SVG)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from streams.engine.clv import CustomerModels
from streams.fit.history import Customer

TOP_BUCKET = 7  # x = 7 and more share the last bucket


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str
    customers: int
    actual: float  # mean repeat order days in the holdout
    predicted: float  # mean of the conditional expectations


def holdout_check(
    customers: Sequence[Customer], models: CustomerModels, weeks: float
) -> list[Bucket]:
    """Mean actual and predicted repeat order days over `weeks` after the calibration end, per
    calibration frequency 0, 1, ..., TOP_BUCKET+."""
    sums: dict[int, list[float]] = {}
    for c in customers:
        key = min(c.x, TOP_BUCKET)
        row = sums.setdefault(key, [0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += c.holdout
        row[2] += models.expected_orders(weeks, c.x, c.t_x, c.T)
    return [
        Bucket(
            f"{key}+" if key == TOP_BUCKET else str(key), int(n), actual / n, predicted / n
        )
        for key, (n, actual, predicted) in sorted(sums.items())
    ]


def table(buckets: Sequence[Bucket]) -> str:
    lines = [f"{'x':>4} {'customers':>10} {'actual':>9} {'predicted':>10}"]
    for b in buckets:
        lines.append(f"{b.label:>4} {b.customers:>10} {b.actual:>9.3f} {b.predicted:>10.3f}")
    return "\n".join(lines)


def plot_html(buckets: Sequence[Bucket], title: str) -> str:
    """A line chart of actual and predicted per bucket, as one HTML page without references."""
    width, height, left, bottom, top, right = 640, 360, 56, 40, 30, 20
    top_value = max([b.actual for b in buckets] + [b.predicted for b in buckets] + [1e-9]) * 1.1
    n = len(buckets)

    def px(i: int) -> float:
        return left + (width - left - right) * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return height - bottom - (height - bottom - top) * v / top_value

    def line(values: list[float], colour: str, dash: str) -> str:
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        dots = "".join(
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>'
            for i, v in enumerate(values)
        )
        return (
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/>{dots}'
        )

    ticks = "".join(
        f'<text x="{px(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
        f"{html.escape(b.label)}</text>"
        for i, b in enumerate(buckets)
    )
    grid = "".join(
        f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
        f'stroke="#ddd"/><text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
        for v in (top_value * k / 5 for k in range(6))
    )
    rows = "".join(
        f"<tr><td>{html.escape(b.label)}</td><td>{b.customers}</td><td>{b.actual:.3f}</td>"
        f"<td>{b.predicted:.3f}</td></tr>"
        for b in buckets
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}svg text{{font-size:12px}}
td,th{{padding:2px 10px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Mean repeat order days in the holdout period per number of repeat order days in the
calibration period: <b style="color:#1f77b4">actual</b> and
<b style="color:#d62728">predicted</b> (BG/NBD conditional expectation).</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">
{grid}{ticks}
<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">
repeat order days in the calibration period</text>
{line([b.actual for b in buckets], "#1f77b4", "")}
{line([b.predicted for b in buckets], "#d62728", "6,4")}
</svg>
<table><tr><th>x</th><th>customers</th><th>actual</th><th>predicted</th></tr>{rows}</table>
</body></html>
"""
