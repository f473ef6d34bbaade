"""`compare.html`: two replays of one history side by side (see `streams.report.compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from streams.report import page, plots
from streams.report.timeline import Timeline, align_sizes, aligned_days

FILE = "compare.html"
SHOWN_IDS = 20

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Compare {{ labels.a }} and {{ labels.b }}</title>
<style>{{ style | safe }}</style></head>
<body>
<h1>Two rule sets, one history</h1>
<p class="sub"><b>{{ labels.a }}</b> and <b>{{ labels.b }}</b>
{% if period %} · event time {{ period }} (UTC){% endif %} · each side's own report:
<a href="a/report.html">A</a>, <a href="b/report.html">B</a></p>

<div class="cards">
<div class="card"><b>{{ sent.a | count }} / {{ sent.b | count }}</b>triggers sent (A / B)</div>
<div class="card"><b>{{ t.a | count }} / {{ t.b | count }}</b>consumers targeted (A / B)</div>
<div class="card"><b>{{ t.both | count }}</b>targeted by both</div>
<div class="card"><b>{{ t.a_only | count }}</b>by A only</div>
<div class="card"><b>{{ t.b_only | count }}</b>by B only</div>
</div>

<h2 id="segments">Segment sizes</h2>
{% if plots.segments %}
<figure id="plot-compare-segments">{{ plots.segments | safe }}
<figcaption>Members of each segment at the end of each day under A (solid) and B (dashed).
</figcaption></figure>
{% endif %}
<table id="segments-table"><thead><tr><th>Segment</th><th>Entered A</th><th>Entered B</th>
<th>Final size A</th><th>Final size B</th><th>Peak A</th><th>Peak B</th></tr></thead><tbody>
{% for name, row in result.segments.items() %}
<tr><td>{{ name }}</td><td>{{ row.entered_a | count }}</td><td>{{ row.entered_b | count }}</td>
<td>{{ row.final_size_a | count }}</td><td>{{ row.final_size_b | count }}</td>
<td>{{ row.peak_size_a | count }}</td><td>{{ row.peak_size_b | count }}</td></tr>
{% else %}<tr><td colspan="7">No segment in either rule set.</td></tr>
{% endfor %}
</tbody></table>

<h2 id="triggers">Triggers per campaign</h2>
{% if plots.triggers %}
<figure id="plot-compare-triggers">{{ plots.triggers | safe }}
<figcaption>Triggers sent (not held out) per campaign over the whole history.</figcaption>
</figure>
{% endif %}
<table id="targeted-table"><thead><tr><th>Campaign</th><th>Sent A</th><th>Sent B</th>
<th>Held out A</th><th>Held out B</th><th>Consumers A</th><th>Consumers B</th><th>Both</th>
<th>A only</th><th>B only</th></tr></thead><tbody>
{% for name, row in result.triggers.items() %}
{% set c = t.by_campaign.get(name, {}) %}
<tr><td>{{ name }}</td><td>{{ row.treated_a | count }}</td><td>{{ row.treated_b | count }}</td>
<td>{{ row.holdout_a | count }}</td><td>{{ row.holdout_b | count }}</td>
<td>{{ c.get("a", 0) | count }}</td><td>{{ c.get("b", 0) | count }}</td>
<td>{{ c.get("both", 0) | count }}</td><td>{{ c.get("a_only", 0) | count }}</td>
<td>{{ c.get("b_only", 0) | count }}</td></tr>
{% else %}<tr><td colspan="10">No trigger fired under either rule set.</td></tr>
{% endfor %}
</tbody></table>

<h2 id="targeted">Consumers targeted by one and not the other</h2>
<p>A consumer is <em>targeted</em> when they were sent at least one trigger (held-out ones do
not count).
{{ t.a_only | count }} consumers would get an offer under A only, {{ t.b_only | count }} under
B only; every id is in <code>compare.json</code> (<code>targeted.a_only_ids</code>,
<code>targeted.b_only_ids</code>, first {{ max_ids }} of each).</p>
<ul id="only-ids">
<li>A only: {{ t.a_only_ids[:shown] | join(", ") or "none" }}{{ " …" if t.a_only > shown }}</li>
<li>B only: {{ t.b_only_ids[:shown] | join(", ") or "none" }}{{ " …" if t.b_only > shown }}</li>
</ul>

<h2 id="anyway">Would have bought anyway</h2>
{% if result.campaigns is none %}
<p class="note">Neither report has campaign results (<code>campaigns</code> in report.json), so
there is no held-out conversion rate to compare.</p>
{% else %}
{% if plots.anyway %}
<figure id="plot-compare-anyway">{{ plots.anyway | safe }}
<figcaption>Per campaign, the share of held-out triggers followed by an order within the
attribution window: consumers who would have bought without the offer.</figcaption></figure>
{% endif %}
<table id="anyway-table"><thead><tr><th>Campaign</th><th>Bought anyway A</th>
<th>Bought anyway B</th><th>Lift A</th><th>Lift A 95% CI</th><th>Lift B</th>
<th>Lift B 95% CI</th></tr></thead><tbody>
{% for name, row in result.campaigns.items() %}
{% set a = row.a or {} %}{% set b = row.b or {} %}
<tr><td>{{ name }}</td><td>{{ a.get("conversion_rate_holdout") | pct }}</td>
<td>{{ b.get("conversion_rate_holdout") | pct }}</td>
<td>{{ a.get("lift") | points }}</td><td>{{ a.get("lift_ci95") | interval }}</td>
<td>{{ b.get("lift") | points }}</td><td>{{ b.get("lift_ci95") | interval }}</td></tr>
{% endfor %}
</tbody></table>
{% endif %}

<h2 id="suppressed">Suppressions by reason</h2>
<table id="suppressed-table"><thead><tr><th>Reason</th><th>A</th><th>B</th></tr></thead><tbody>
{% for reason, row in result.suppressed.items() %}
<tr><td>{{ reason }}</td><td>{{ row.a | count }}</td><td>{{ row.b | count }}</td></tr>
{% else %}<tr><td colspan="3">Nothing suppressed under either rule set.</td></tr>
{% endfor %}
</tbody></table>
</body></html>
"""


def write_page(
    out_dir: Path, result: dict[str, Any], a: Timeline, b: Timeline, max_ids: int
) -> Path:
    """Write `out_dir/compare.html` from `compare()`'s result and the two timelines
    (`max_ids`: how many ids per group compare.json lists)."""
    days = aligned_days([a, b])
    labels = (result["labels"]["a"], result["labels"]["b"])
    sizes_a, sizes_b = align_sizes(a, days), align_sizes(b, days)
    triggers = result["triggers"]
    campaigns = result.get("campaigns")
    with_rates = sorted(
        name for name, row in (campaigns or {}).items()
        if any(side and side.get("conversion_rate_holdout") is not None
               for side in (row["a"], row["b"]))
    )
    figures = {
        "segments": plots.compare_segments(days, sizes_a, sizes_b, labels)
        if sizes_a or sizes_b else None,
        "triggers": plots.compare_bars(
            "triggers", list(triggers), [r["treated_a"] for r in triggers.values()],
            [r["treated_b"] for r in triggers.values()], labels, "triggers sent",
        ) if triggers else None,
        "anyway": plots.compare_bars(
            "anyway", with_rates,
            [_pct((campaigns or {})[n]["a"]) for n in with_rates],
            [_pct((campaigns or {})[n]["b"]) for n in with_rates],
            labels, "held-out conversion rate: would have bought anyway (%)",
        ) if with_rates else None,
    }
    sent = {side: sum(r[f"treated_{side}"] for r in triggers.values()) for side in ("a", "b")}
    html = environment().from_string(TEMPLATE).render(
        result=result, labels=result["labels"], t=result["targeted"], sent=sent,
        plots=figures, period=f"{days[0]} to {days[-1]}" if days else "",
        shown=SHOWN_IDS, max_ids=max_ids,
    )
    path = out_dir / FILE
    path.write_text(html, encoding="utf-8")
    return path


def environment() -> Environment:
    """Jinja2 with the report's number formats as filters and its style as `style`."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(pct=page.pct, points=page.points, interval=page.interval,
                       money=page.money, pvalue=page.pvalue, count=page.count, sign=page.sign)
    env.globals["style"] = page.STYLE
    return env


def _pct(side: dict[str, Any] | None) -> float | None:
    rate = side.get("conversion_rate_holdout") if side else None
    return float(rate) * 100.0 if isinstance(rate, int | float) else None
