"""report.html as text: every plot, the campaign results as report.json has them, no outside
reference, and a clear note when there are no campaign results."""

from __future__ import annotations

import re
from html import unescape

import pytest

from streams.report import page
from streams.report.html import render, write_report
from streams.report.timeline import Timeline
from tests.unit.report.conftest import Replayed
from tests.unit.report.helpers import arm_figures, campaigns


@pytest.fixture(scope="module")
def with_results(example: Replayed) -> str:
    """The example's page with campaign results."""
    return render({**example.report, "campaigns": campaigns()}, example.timeline)


def test_every_plot_of_the_replay_is_an_inline_svg(with_results: str) -> None:
    html = with_results
    for plot in ("plot-segment-sizes", "plot-triggers", "plot-suppressions", "plot-results"):
        assert re.search(f'<figure id="{plot}"><svg', html), plot
    assert "<?xml" not in html


def test_the_page_needs_nothing_from_outside(with_results: str) -> None:
    html = with_results
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(" not in html.replace("url(#", "")


def test_the_style_sheet_is_written_as_css_so_its_quoted_font_names_apply(
    with_results: str,
) -> None:
    style = with_results.split("<style>", 1)[1].split("</style>", 1)[0]
    assert style == page.STYLE and '"Segoe UI"' in style


def test_campaign_results_show_lift_with_its_interval_and_the_would_have_bought_share(
    with_results: str,
) -> None:
    html = with_results
    table = html[html.index('<table id="results-table">'):html.index("</table>")]
    # winback: 50/200 treated vs 6/40 held out: +10.0 pts, CI [+5.0, +15.0], bought anyway 15%
    row = table[table.index("<td>winback-60d</td>"):]
    row = row[:row.index("</tr>")]
    cells = [unescape(c) for c in re.findall(r"<td[^>]*>\s*([^<]*)</td>", row)]
    assert cells[:11] == ["winback-60d", "200", "40", "50", "6", "25.0%", "15.0%", "+10.0 pts",
                          "[+5.0, +15.0] pts", "66.7%", "< 0.001"]
    assert cells[13] == "500.00"
    # offers under a campaign with several of them; a single offer is not repeated
    assert "<td>vip-20</td>" in table and "<td>comeback-10</td>" in table
    assert "<td>free-shipping</td>" not in table
    # an arm with no triggers: no rate, no lift, said with a dash rather than a number
    empty = table[table.index("<td>new-campaign</td>"):]
    assert re.findall(r"<td[^>]*>\s*([^<]*)</td>", empty[:empty.index("</tr>")])[6:9] == \
        ["–", "–", "–"]
    anyway = html[html.index('<ul id="anyway-list">'):]
    assert "15.0% of\n40 held-out triggers converted anyway" in anyway
    assert "about\n<b>30</b> went to consumers who would have bought anyway" in anyway


def test_a_report_without_campaign_results_says_so_and_still_has_its_plots(
    example: Replayed,
) -> None:
    report = {k: v for k, v in example.report.items() if k != "campaigns"}
    html = render(report, example.timeline)
    assert "This report has no campaign results" in html
    assert 'id="results-table"' not in html and 'id="plot-results"' not in html
    assert 'id="plot-segment-sizes"' in html


def test_campaigns_with_no_closed_window_yet_say_there_is_nothing_to_measure() -> None:
    html = render({"campaigns": {}}, Timeline())
    assert "nothing to measure yet" in html


def test_an_empty_replay_gives_a_page_that_says_what_is_missing() -> None:
    html = render({}, Timeline())
    assert "No segment changes in this replay" in html
    assert "No triggers fired in this replay" in html
    assert "No trigger was suppressed in this replay" in html


def test_the_same_replay_draws_the_same_page(example: Replayed, with_results: str) -> None:
    assert render({**example.report, "campaigns": campaigns()}, example.timeline) == with_results


def test_write_report_puts_report_html_in_the_output_directory(example: Replayed, tmp_path) -> None:
    path = write_report(tmp_path, example.report, example.timeline)
    assert path == tmp_path / "report.html" and path.read_text().startswith("<!doctype html>")


def test_numbers_are_formatted_for_people_and_non_numbers_become_a_dash() -> None:
    assert page.pct(0.1234) == "12.3%" and page.pct(None) == "–" and page.pct(float("nan")) == "–"
    assert page.points(-0.021) == "-2.1 pts" and page.points(True) == "–"
    assert page.interval([-0.01, 0.03]) == "[-1.0, +3.0] pts" and page.interval([0.1]) == "–"
    assert page.money(1234.5) == "1,234.50" and page.pvalue(0.0123) == "0.012"
    assert page.count(12345) == "12,345" and page.count(None) == "–"


def test_names_from_the_rules_are_text_never_markup() -> None:
    t = Timeline()
    odd = "$5 off $50 <b>&</b>"
    t.add("segment-changes", {"segment": odd, "change": "entered", "at": "2026-01-01T00:00:00Z"})
    t.add("triggers.winback", {"campaign": odd, "offer": odd, "holdout": False,
                               "fired_at": "2026-01-01T00:00:00Z"})
    t.add("suppressed", {"campaign": odd, "reason": "cooldown", "due_at": "2026-01-01T00:00:00Z"})
    html = render({"campaigns": {odd: arm_figures(10, 10, 5, 2)}}, t)
    assert "<b>&</b>" not in html
    for plot in ("plot-segment-sizes", "plot-triggers", "plot-suppressions", "plot-results"):
        svg = html[html.index(f'<figure id="{plot}">'):]
        assert ">$5 off $50 &lt;b&gt;&amp;&lt;/b&gt;</text>" in svg[:svg.index("</svg>")], plot


def test_text_is_escaped_as_jinja2_escapes_it_in_elements_and_quoted_attributes() -> None:
    assert page.escape("<b> & \"it's\"") == "&lt;b&gt; &amp; &#34;it&#39;s&#34;"
    assert page.escape(12) == "12" and page.escape(None) == "None"
