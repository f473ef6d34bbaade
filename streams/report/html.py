"""`report.html`: the backtest report, one self-contained file beside `report.json`.

Plots (inline SVG, `streams.report.plots`) of the replay's timeline and the campaign results of
`report["campaigns"]` (`streams.measure.results.CampaignResults.report()`); the page says so
when a report has no campaign results rather than failing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Any

import orjson

from streams.report import plots
from streams.report.page import STYLE, count, escape, interval, money, pct, points, pvalue, sign
from streams.report.timeline import Timeline

FILE = "report.html"

# `string.Template`s filled by `render` (importing Jinja2 and compiling one template was about a
# tenth of the page's process); every `$value` is escaped HTML or markup built here
PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backtest report$title</title>
<style>$style</style></head>
<body>
<h1>Backtest report</h1>
<p class="sub">$sub$partitions partitions · $engine engine ·
replayed in $seconds s</p>

<div class="cards">
$cards</div>

<h2 id="segments">Segment sizes over time</h2>
$segment_sizes
<h2 id="triggers">Triggers per day</h2>
$triggers
<h2 id="suppressions">Suppressions by reason</h2>
$suppressions
<h2 id="results">Campaign results</h2>
$results</body></html>""")

SEGMENT_SIZES = Template("""<figure id="plot-segment-sizes">$plot
<figcaption>Members of each segment at the end of each day (UTC), from the
<code>entered</code>/<code>exited</code> changes in <code>segment_changes.jsonl</code>; the replay
starts with every segment empty.</figcaption></figure>
""")

TRIGGERS = Template("""<figure id="plot-triggers">$plot
<figcaption>One panel per campaign: the triggers fired each day (by <code>fired_at</code>) that
were sent, stacked by offer; the dashed line counts the held-out triggers of that campaign
(never sent, kept to measure the lift). Over more than $max_bars days, each bar is the mean
per day over 7 days (30 beyond $max_weeks days).</figcaption></figure>
""")

SUPPRESSIONS = Template("""<figure id="plot-suppressions">$plot
<figcaption>Triggers that were due but not fired, by reason (<code>consent</code>: no marketing
consent, <code>frequency_cap</code>: too many offers to this consumer lately,
<code>cooldown</code>: this campaign reached them too recently): per day on the left, per
campaign in total on the right (per-day bars are binned like the triggers').</figcaption></figure>
""")

NO_RESULTS = """\
<p class="note">This report has no campaign results: <code>report.json</code> has no
<code>campaigns</code> (the engine that wrote it does not attribute conversions).</p>
"""

NOTHING_MEASURED = """\
<p class="note">No campaign has a trigger whose attribution window closed by the end of the
input, so there is nothing to measure yet.</p>
"""

RESULTS = Template("""\
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
$rows</tbody></table>
<figure id="plot-results">$plot
<figcaption>Left: the share of treated and of held-out triggers followed by an order within the
window. Right: the lift (points) with its 95% confidence interval; an interval that crosses 0
means the campaign's effect cannot be told apart from none.</figcaption></figure>

<h2 id="anyway">Would have bought anyway</h2>
<p>The held-out consumers of a campaign got nothing, so the share of them who bought within the
window is the share of targeted consumers who would have bought without the offer.</p>
<ul id="anyway-list">
$anyway</ul>
""")

ROW = Template("""<tr$offer><td>$name</td>
<td>$treated</td><td>$holdout</td>
<td>$converted_treated</td>
<td>$converted_holdout</td>
<td>$rate_treated</td>
<td>$rate_holdout</td>
<td class="$lift_sign">$lift</td>
<td>$ci</td><td>$relative</td>
<td>$p</td>
<td>$revenue_treated</td>
<td>$revenue_holdout</td>
<td class="$incremental_sign">$incremental</td>
</tr>
""")

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


def render(
    report: Mapping[str, Any], timeline: Timeline,
    figures: Mapping[str, str | None] | None = None,
) -> str:
    """The report page as HTML text (`figures`: `timeline_figures(timeline)`, if drawn)."""
    days = timeline.days()
    period = f"{days[0]} to {days[-1]}" if days else ""
    raw_campaigns = report.get("campaigns")
    campaigns = dict(sorted(raw_campaigns.items())) if isinstance(raw_campaigns, dict) else None
    drawn = timeline_figures(timeline) if figures is None else figures
    timing = report.get("timing") or {}
    cards = [(label, report.get(key)) for label, key in CARDS]
    cards[3:3] = [
        ("triggers sent", _total(report.get("triggers"))),
        ("held out", _total(report.get("holdout"))),
        ("suppressed", _total(report.get("suppressed"))),
    ]
    return PAGE.substitute(
        title=escape(f" – {period}") if period else "",
        style=STYLE,  # (our own text, and CSS: escaping would break its quoted font names)
        sub=f"Event time {escape(period)} (UTC) · " if period else "",
        partitions=escape(report.get("partitions", "?")),
        engine=escape(timing.get("engine", "?")),
        seconds=escape(timing.get("seconds", "?")),
        cards="".join(f'<div class="card"><b>{escape(count(value))}</b>{escape(label)}</div>\n'
                      for label, value in cards),
        segment_sizes=_figure(SEGMENT_SIZES, drawn.get("segment_sizes"),
                              "No segment changes in this replay."),
        triggers=_figure(TRIGGERS, drawn.get("triggers"), "No triggers fired in this replay.",
                         max_bars=plots.MAX_BARS, max_weeks=7 * plots.MAX_BARS),
        suppressions=_figure(SUPPRESSIONS, drawn.get("suppressions"),
                             "No trigger was suppressed in this replay."),
        results=_results(campaigns),
    )


def _figure(template: Template, svg: str | None, none: str, **values: Any) -> str:
    """A plot with its caption, or the sentence saying there is nothing to plot."""
    if not svg:
        return f"<p>{none}</p>"
    return template.substitute(plot=svg, **values)


def _results(campaigns: Mapping[str, Any] | None) -> str:
    """The campaign results table, its plot and the "would have bought anyway" list."""
    if campaigns is None:
        return NO_RESULTS
    if not campaigns:
        return NOTHING_MEASURED
    return RESULTS.substitute(
        rows="".join(_row(name, row, offer) for name, row, offer in _rows(campaigns)),
        plot=plots.campaign_results(campaigns),
        anyway="".join(_anyway_item(name, row) for name, row in campaigns.items()),
    )


def _row(name: str, row: Mapping[str, Any], offer: bool) -> str:
    cell = row.get
    return ROW.substitute(
        offer=' class="offer"' if offer else "", name=escape(name),
        treated=escape(count(cell("treated"))), holdout=escape(count(cell("holdout"))),
        converted_treated=escape(count(cell("converted_treated"))),
        converted_holdout=escape(count(cell("converted_holdout"))),
        rate_treated=escape(pct(cell("conversion_rate_treated"))),
        rate_holdout=escape(pct(cell("conversion_rate_holdout"))),
        lift_sign=sign(cell("lift")), lift=escape(points(cell("lift"))),
        ci=escape(interval(cell("lift_ci95"))), relative=escape(pct(cell("relative_lift"))),
        p=escape(pvalue(cell("p_value"))),
        revenue_treated=escape(money(cell("revenue_per_trigger_treated"))),
        revenue_holdout=escape(money(cell("revenue_per_trigger_holdout"))),
        incremental_sign=sign(cell("incremental_revenue")),
        incremental=escape(money(cell("incremental_revenue"))),
    )


def _anyway_item(name: str, row: Mapping[str, Any]) -> str:
    item = (f"<li><b>{escape(name)}</b>: {escape(pct(row.get('conversion_rate_holdout')))} of\n"
            f"{escape(count(row.get('holdout')))} held-out triggers converted anyway")
    anyway = _anyway(row)
    if anyway is not None:
        item += (f"; of the {escape(count(row.get('treated')))} offers sent, about\n"
                 f"<b>{escape(count(anyway))}</b> went to consumers who would have bought "
                 "anyway")
    return item + ".</li>\n"


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
