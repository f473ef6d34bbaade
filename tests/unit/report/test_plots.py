"""The report's plots as SVG: every labelled series keyed in its legend, in its own colour."""

from __future__ import annotations

import re

from streams.report import plots

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03"]


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def _strokes(svg: str) -> list[str]:
    return re.findall(r"stroke: (#[0-9a-f]{6})", svg)


def test_the_legend_names_every_series_in_order_with_a_handle_of_its_colour() -> None:
    svg = plots.segment_sizes(DAYS, {"alpha": [1, 2, 3], "beta": [3, 2, 1], "gamma": [0, 0, 1]})
    texts = _texts(svg)
    assert [t for t in texts if t in ("alpha", "beta", "gamma")] == ["alpha", "beta", "gamma"]
    for colour in ("#1f77b4", "#ff7f0e", "#2ca02c"):  # the series' and the legend's lines
        assert _strokes(svg).count(colour) == 2, colour


def test_stacked_offers_are_keyed_by_boxes_and_the_held_out_line_by_a_dashed_line() -> None:
    svg = plots.triggers_per_day(DAYS, {"cart": {"free-shipping": [1, 2, 3]}},
                                 {"cart": {"free-shipping": [1, 0, 0]}})
    assert "free-shipping" in _texts(svg) and "held out (all offers)" in _texts(svg)
    dashed = re.findall(r'<path d="([^"]*)"[^>]*stroke-dasharray', svg)
    assert len(dashed) == 2  # the held-out series and its legend handle


def test_a_legend_side_by_side_keeps_every_entry_apart() -> None:
    from tests.unit.report.helpers import campaigns

    svg = plots.campaign_results(campaigns())
    xs = {t: float(x) for x, t in re.findall(r'<text[^>]*\bx="([-\d.]+)"[^>]*>([^<]*)</text>',
                                             svg)}
    assert xs["held out (would have bought anyway)"] > xs["treated"] + 40
