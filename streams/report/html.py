"""`report.html`: the backtest report, one self-contained file beside `report.json`.

Plots (inline SVG, `streams.report.plots`) of the replay's timeline and the campaign results of
`report["campaigns"]` (`streams.measure.results.CampaignResults.report()`); the page says so
when a report has no campaign results rather than failing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Template

from streams.report import plots
from streams.report.page import environment
from streams.report.timeline import Timeline

FILE = "report.html"

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backtest report{{ " – " ~ period if period }}</title>
<style>{{ style }}</style></head>
<body>
<h1>Backtest report</h1>
<p class="sub">{% if period %}Event time {{ period }} (UTC) · {% endif %}
{{ report.get("partitions", "?") }} partitions · {{ timing.get("engine", "?") }} engine ·
replayed in {{ timing.get("seconds", "?") }} s</p>

<div class="cards">
{% for label, value in cards %}
<div class="card"><b>{{ value | count }}</b>{{ label }}</div>
{% endfor %}
</div>

<h2 id="segments">Segment sizes over time</h2>
{% if plots.segment_sizes %}
<figure id="plot-segment-sizes">{{ plots.segment_sizes | safe }}
<figcaption>Members of each segment at the end of each day (UTC), from the
<code>entered</code>/<code>exited</code> changes in <code>segment_changes.jsonl</code>; the replay
starts with every segment empty.</figcaption></figure>
{% else %}<p>No segment changes in this replay.</p>{% endif %}

<h2 id="triggers">Triggers per day</h2>
{% if plots.triggers %}
<figure id="plot-triggers">{{ plots.triggers | safe }}
<figcaption>One panel per campaign: the triggers fired each day (by <code>fired_at</code>) that
were sent, stacked by offer; the dashed line counts the held-out triggers of that campaign
(never sent, kept to measure the lift). Over more than {{ max_bars }} days, each bar is the mean
per day over 7 days (30 beyond {{ 7 * max_bars }} days).</figcaption></figure>
{% else %}<p>No triggers fired in this replay.</p>{% endif %}

<h2 id="suppressions">Suppressions by reason</h2>
{% if plots.suppressions %}
<figure id="plot-suppressions">{{ plots.suppressions | safe }}
<figcaption>Triggers that were due but not fired, by reason (<code>consent</code>: no marketing
consent, <code>frequency_cap</code>: too many offers to this consumer lately,
<code>cooldown</code>: this campaign reached them too recently): per day on the left, per
campaign in total on the right (per-day bars are binned like the triggers').</figcaption></figure>
{% else %}<p>No trigger was suppressed in this replay.</p>{% endif %}

<h2 id="results">Campaign results</h2>
{% if campaigns is none %}
<p class="note">This report has no campaign results: <code>report.json</code> has no
<code>campaigns</code> (the engine that wrote it does not attribute conversions).</p>
{% elif not campaigns %}
<p class="note">No campaign has a trigger whose attribution window closed by the end of the
input, so there is nothing to measure yet.</p>
{% else %}
<p>Over the triggers whose attribution window closed by the end of the input. A trigger
<em>converted</em> when the consumer completed an order within its window after
<code>fired_at</code>; <em>lift</em> is the treated conversion rate minus the held-out one, with
its 95% confidence interval and the p-value of the two-proportion test.</p>
<table id="results-table">
<thead><tr><th>Campaign / offer</th><th>Treated</th><th>Held out</th><th>Converted<br>treated</th>
<th>Converted<br>held out</th><th>Rate<br>treated</th><th>Rate held out<br>(bought anyway)</th>
<th>Lift</th><th>Lift 95% CI</th><th>Relative<br>lift</th><th>p-value</th>
<th>Revenue / trigger<br>treated</th><th>Revenue / trigger<br>held out</th>
<th>Incremental<br>revenue</th></tr></thead>
<tbody>
{% for name, row, offer in rows %}
<tr{{ ' class="offer"' | safe if offer }}><td>{{ name }}</td>
<td>{{ row.get("treated") | count }}</td><td>{{ row.get("holdout") | count }}</td>
<td>{{ row.get("converted_treated") | count }}</td>
<td>{{ row.get("converted_holdout") | count }}</td>
<td>{{ row.get("conversion_rate_treated") | pct }}</td>
<td>{{ row.get("conversion_rate_holdout") | pct }}</td>
<td class="{{ row.get('lift') | sign }}">{{ row.get("lift") | points }}</td>
<td>{{ row.get("lift_ci95") | interval }}</td><td>{{ row.get("relative_lift") | pct }}</td>
<td>{{ row.get("p_value") | pvalue }}</td>
<td>{{ row.get("revenue_per_trigger_treated") | money }}</td>
<td>{{ row.get("revenue_per_trigger_holdout") | money }}</td>
<td class="{{ row.get('incremental_revenue') | sign }}">
{{- row.get("incremental_revenue") | money }}</td>
</tr>
{% endfor %}
</tbody></table>
<figure id="plot-results">{{ plots.results | safe }}
<figcaption>Left: the share of treated and of held-out triggers followed by an order within the
window. Right: the lift (points) with its 95% confidence interval; an interval that crosses 0
means the campaign's effect cannot be told apart from none.</figcaption></figure>

<h2 id="anyway">Would have bought anyway</h2>
<p>The held-out consumers of a campaign got nothing, so the share of them who bought within the
window is the share of targeted consumers who would have bought without the offer.</p>
<ul id="anyway-list">
{% for name, row in campaigns.items() %}
<li><b>{{ name }}</b>: {{ row.get("conversion_rate_holdout") | pct }} of
{{ row.get("holdout") | count }} held-out triggers converted anyway
{%- if anyway[name] is not none %}; of the {{ row.get("treated") | count }} offers sent, about
<b>{{ anyway[name] | count }}</b> went to consumers who would have bought anyway
{%- endif %}.</li>
{% endfor %}
</ul>
{% endif %}
</body></html>
"""

CARDS = (
    ("input lines", "input_lines"),
    ("events applied", "applied"),
    ("consumers", "consumers"),
    ("duplicates", "duplicates"),
    ("dead letters", "dead_letters"),
)


def write_report(
    out_dir: Path, report: dict[str, Any], timeline: Timeline,
    figures: Mapping[str, str | None] | None = None,
) -> Path:
    """Write `out_dir/report.html` from a replay's report and timeline (and the timeline's
    plots, when `timeline_figures` drew them already); return its path."""
    path = out_dir / FILE
    path.write_text(render(report, timeline, figures), encoding="utf-8")
    return path


def timeline_figures(timeline: Timeline) -> dict[str, str | None]:
    """The plots of the timeline alone (inline SVG; None: nothing to plot), which need nothing
    from report.json and so can be drawn before it is written."""
    days = timeline.days()
    sizes = timeline.segment_sizes()
    treated = timeline.triggers_per_day(holdout=False)
    holdout = timeline.triggers_per_day(holdout=True)
    suppressed = timeline.suppressions_per_day()
    return {
        "segment_sizes": plots.segment_sizes(days, sizes) if sizes else None,
        "triggers": plots.triggers_per_day(days, treated, holdout) if treated or holdout
        else None,
        "suppressions": plots.suppressions(days, suppressed, timeline.suppressions_by_campaign())
        if suppressed else None,
    }


@cache
def template() -> Template:
    """The page's compiled template (compiled once per process)."""
    return environment().from_string(TEMPLATE)


def render(
    report: Mapping[str, Any], timeline: Timeline,
    figures: Mapping[str, str | None] | None = None,
) -> str:
    """The report page as HTML text (`figures`: `timeline_figures(timeline)`, if drawn)."""
    days = timeline.days()
    raw_campaigns = report.get("campaigns")
    campaigns = dict(sorted(raw_campaigns.items())) if isinstance(raw_campaigns, dict) else None
    all_figures = {
        **(timeline_figures(timeline) if figures is None else figures),
        "results": plots.campaign_results(campaigns) if campaigns else None,
    }
    cards = [(label, report.get(key)) for label, key in CARDS]
    cards[3:3] = [
        ("triggers sent", _total(report.get("triggers"))),
        ("held out", _total(report.get("holdout"))),
        ("suppressed", _total(report.get("suppressed"))),
    ]
    return template().render(
        report=report,
        timing=report.get("timing") or {},
        period=f"{days[0]} to {days[-1]}" if days else "",
        cards=cards,
        plots=all_figures,
        campaigns=campaigns,
        rows=_rows(campaigns or {}),
        anyway={name: _anyway(row) for name, row in (campaigns or {}).items()},
        max_bars=plots.MAX_BARS,
    )


def _rows(campaigns: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], bool]]:
    """(label, figures, is an offer) for the table: each campaign, then its offers."""
    rows: list[tuple[str, Mapping[str, Any], bool]] = []
    for name, row in campaigns.items():
        rows.append((name, row, False))
        offers = row.get("offers")
        if isinstance(offers, dict) and len(offers) > 1:
            rows.extend((offer, figures, True) for offer, figures in sorted(offers.items()))
    return rows


def _anyway(row: Mapping[str, Any]) -> int | None:
    """Offers sent to consumers who would have bought anyway: treated x held-out rate."""
    treated, rate = row.get("treated"), row.get("conversion_rate_holdout")
    if isinstance(treated, int) and isinstance(rate, int | float):
        return round(treated * rate)
    return None


def _total(counts: Any) -> int | None:
    return sum(counts.values()) if isinstance(counts, dict) else None


def main(argv: list[str]) -> int:
    """`python -m streams.report.html OUT_DIR` (or `streams.report.child`, as the replay runs
    it): report.html from two JSON lines on stdin,
    `{"timeline": Timeline.to_state()}` then `{"report": report}` (see
    `streams.report.writer`). The timeline's plots are drawn as soon as its line comes, while
    the replay still writes its last files; no line (or no second line) writes nothing."""
    template()  # compiled while the replay runs
    stdin = sys.stdin.buffer
    line = stdin.readline()
    if not line.strip():
        return 0
    timeline = Timeline.from_state(orjson.loads(line)["timeline"])
    figures = timeline_figures(timeline)
    line = stdin.readline()
    if not line.strip():
        return 0
    out = Path(argv[0])
    try:
        write_report(out, orjson.loads(line)["report"], timeline, figures)
    except OSError as exc:
        print(f"cannot write {out / FILE}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
