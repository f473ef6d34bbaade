"""The report's plots: matplotlib figures rendered to inline SVG strings.

Only matplotlib's object API is used (no pyplot, no GUI backend, no global state): each figure
is drawn under its own `rc_context` with text kept as SVG text (small, selectable, fonts from
the reader's browser) and a fixed hash salt and no date, so the same data gives the same SVG.
Days are plotted by index with dates as tick labels (cheaper than matplotlib's date units).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.transforms import Affine2DBase, ScaledTranslation

WIDTH = 11.0  # inches at 72 pt: ~790 CSS px before the page scales it
_TAB20 = matplotlib.colormaps["tab20"]
COLORS = [_TAB20(i) for i in range(0, 20, 2)] + [_TAB20(i) for i in range(1, 20, 2)]
#: flows (triggers, suppressions) over more days than this are shown as means over 7 or 30 days
MAX_BARS = 120
ARMS = {"treated": "#1f77b4", "holdout": "#9e9e9e", "a": "#1f77b4", "b": "#ff7f0e"}


@contextmanager
def _figure(
    name: str, height: float, rows: int = 1, cols: int = 1, *, left: float = 0.75,
    right: float = 0.25, top: float = 0.3, bottom: float = 0.45, hspace: float = 0.5,
    wspace: float = 0.8, **kw: Any,
) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of rows x cols axes. Margins and gaps are fixed in inches: matplotlib's layout
    engines measure every text first, which doubles the cost of a plot."""
    # names come from the rules file: "$5 off $50" is text, never mathtext
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name,
                                "text.parse_math": False, "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False}):
        fig = Figure(figsize=(WIDTH, height))
        FigureCanvasSVG(fig)
        axes = fig.subplots(rows, cols, squeeze=False, **kw)
        axes_h = (height - top - bottom - hspace * (rows - 1)) / rows
        axes_w = (WIDTH - left - right - wspace * (cols - 1)) / cols
        fig.subplots_adjust(left=left / WIDTH, right=1 - right / WIDTH, top=1 - top / height,
                            bottom=bottom / height, hspace=hspace / axes_h,
                            wspace=wspace / axes_w)
        yield fig, [ax for row in axes for ax in row]


def _key(
    ax: Axes, *, at: tuple[float, float] = (1.01, 1.0), corner: str = "upper left",
    fontsize: float = 9.0, across: bool = False,
) -> None:
    """The legend of `ax`'s labelled artists, laid out like matplotlib's frameless legend with
    its `corner` at `at` (axes fraction): one entry below the other (`across`: side by side).

    matplotlib's `Legend` measures every label several times to pack its boxes; here entries
    are placed at fixed steps of the font size (label widths estimated, as `_labels_width`
    does), each a filled box or a line, and a text."""
    fig = ax.figure
    em = fontsize / 72.0  # inches
    handle, gap, row = 2.0 * em, 0.8 * em, 1.5 * em
    pad = 0.9 * em  # matplotlib's border pad and the pad between the axes and the legend
    entries = list(zip(*ax.get_legend_handles_labels(), strict=True))
    widths = [handle + gap + 0.6 * em * len(label) for _, label in entries]
    span = sum(widths) + 2.0 * em * (len(widths) - 1) if across else max(widths, default=0.0)
    rows = 1 if across else len(entries)
    x = -pad - span if corner.endswith("right") else pad
    y = -pad - 0.6 * em if corner.startswith("upper") else pad + 0.6 * em + row * (rows - 1)
    axes = ax.transAxes
    assert isinstance(axes, Affine2DBase)
    where = fig.dpi_scale_trans + ScaledTranslation(at[0], at[1], axes)  # inches from `at`
    for (artist, label), width in zip(entries, widths, strict=True):
        if isinstance(artist, Line2D):
            fig.add_artist(Line2D([x, x + handle], [y, y], transform=where,
                                  color=artist.get_color(), ls=artist.get_linestyle(),
                                  lw=artist.get_linewidth()))
        else:
            patch = artist.patches[0] if isinstance(artist, BarContainer) else artist
            color = patch.get_facecolor() if isinstance(patch, Patch) else "#777777"
            fig.add_artist(Rectangle((x, y - 0.35 * em), handle, 0.7 * em, transform=where,
                                     facecolor=color, edgecolor="none"))
        fig.text(x + handle + gap, y, label, transform=where, fontsize=fontsize, va="center")
        if across:
            x += width + 2.0 * em
        else:
            y -= row


def _labels_width(names: Sequence[str]) -> float:
    """Inches that tick labels `names` take at the report's font size (an estimate)."""
    return 0.25 + 0.07 * max((len(n) for n in names), default=0)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: inline in HTML


def _day_axis(ax: Axes, days: Sequence[str], ticks: int = 8) -> None:
    n = len(days)
    step = max(1, -(-n // ticks))
    positions = list(range(0, n, step))
    ax.set_xticks(positions, [days[i] for i in positions], rotation=0)
    ax.set_xlim(-0.5, max(n - 0.5, 0.5))
    ax.grid(axis="y", alpha=0.3)


def _binned(days: Sequence[str]) -> tuple[list[str], int]:
    """(first day of each bin, days per bin): one bin per day up to MAX_BARS days."""
    width = 1 if len(days) <= MAX_BARS else 7 if len(days) <= 7 * MAX_BARS else 30
    return list(days[::width]), width


def _per_day(series: Sequence[int], width: int) -> list[float]:
    """Mean per day over bins of `width` days (the last bin may be shorter)."""
    if width == 1:
        return [float(v) for v in series]
    return [sum(series[i:i + width]) / len(series[i:i + width])
            for i in range(0, len(series), width)]


def _stack(ax: Axes, layers: Sequence[tuple[str, Sequence[float]]]) -> None:
    """Stacked bars one bin wide, drawn as one step patch per layer (a patch per bar is ten
    times slower to lay out and render)."""
    if not layers:
        return
    edges = [i - 0.5 for i in range(len(layers[0][1]) + 1)]
    bottom = [0.0] * len(layers[0][1])
    for i, (label, values) in enumerate(layers):
        top = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.stairs(top, edges, baseline=bottom, fill=True, color=COLORS[i % 20], label=label)
        bottom = top


def _unit(width: int) -> str:
    return "per day" if width == 1 else f"per day ({width}-day mean)"


def segment_sizes(days: Sequence[str], sizes: Mapping[str, Sequence[int]]) -> str:
    """Members of each segment at the end of each day, one line per segment."""
    with _figure("segment-sizes", 4.2, right=2.4) as (fig, (ax,)):
        x = range(len(days))
        for i, (segment, series) in enumerate(sizes.items()):
            ax.step(x, series, where="post", color=COLORS[i % 20], label=segment, lw=1.4)
        _day_axis(ax, days)
        ax.set_ylabel("members at end of day")
        _key(ax)
        return _svg(fig)


def triggers_per_day(
    days: Sequence[str],
    treated: Mapping[str, Mapping[str, Sequence[int]]],
    holdout: Mapping[str, Mapping[str, Sequence[int]]],
) -> str:
    """Per campaign: treated triggers per day stacked by offer, and the held-out ones (all
    offers) as a grey line."""
    campaigns = sorted(set(treated) | set(holdout))
    bins, width = _binned(days)
    with _figure("triggers", 0.8 + 2.0 * len(campaigns), rows=len(campaigns), right=2.4,
                 sharex=True) as (fig, axes):
        x = range(len(bins))
        for ax, campaign in zip(axes, campaigns, strict=True):
            offers = treated.get(campaign, {})
            _stack(ax, [(offer, _per_day(series, width)) for offer, series in offers.items()])
            held = holdout.get(campaign, {})
            if held:
                total = [sum(col) for col in zip(*held.values(), strict=True)]
                ax.step(x, _per_day(total, width), where="mid", color="#333333", lw=1.0,
                        ls="--", label="held out (all offers)")
            ax.set_title(campaign, loc="left", fontsize=10, fontweight="bold", y=1.0)
            ax.set_ylabel(f"triggers {_unit(width)}")
            _key(ax, fontsize=8)
            _day_axis(ax, bins)
        return _svg(fig)


def suppressions(
    days: Sequence[str],
    per_day: Mapping[str, Sequence[int]],
    by_campaign: Mapping[str, Mapping[str, int]],
) -> str:
    """Left: suppressed triggers per day stacked by reason; right: totals per campaign."""
    reasons = sorted(per_day)
    color = {r: COLORS[i % 20] for i, r in enumerate(reasons)}
    bins, width = _binned(days)
    campaigns = sorted(by_campaign)
    with _figure("suppressions", 3.4, cols=2, width_ratios=[3, 2], bottom=0.55,
                 wspace=0.5 + _labels_width(campaigns)) as (fig, (left, right)):
        _stack(left, [(reason, _per_day(per_day[reason], width)) for reason in reasons])
        _day_axis(left, bins, ticks=5)
        left.set_ylabel(f"suppressed {_unit(width)}")
        _key(left, at=(1.0, 1.0), corner="upper right")
        base = [0] * len(campaigns)
        for reason in reasons:
            counts = [by_campaign[c].get(reason, 0) for c in campaigns]
            right.barh(campaigns, counts, left=base, color=color[reason], label=reason)
            base = [b + n for b, n in zip(base, counts, strict=True)]
        right.invert_yaxis()
        right.set_xlabel("suppressed in total")
        right.grid(axis="x", alpha=0.3)
        return _svg(fig)


def campaign_results(campaigns: Mapping[str, Mapping[str, Any]]) -> str:
    """Left: conversion rate of treated vs held-out triggers per campaign (the held-out bar is
    the "would have bought anyway" share); right: the lift with its 95% interval."""
    names = sorted(campaigns)
    label_w = _labels_width(names)
    with _figure("results", 1.4 + 0.45 * len(names), cols=2, left=label_w, bottom=0.55, top=0.4,
                 wspace=0.5 + label_w) as (fig, (rates, lift)):
        y = list(range(len(names)))
        for offset, arm in ((-0.2, "treated"), (0.2, "holdout")):
            values = [_pct(campaigns[n].get(f"conversion_rate_{arm}")) for n in names]
            label = "treated" if arm == "treated" else "held out (would have bought anyway)"
            rates.barh([v + offset for v in y], [v or 0.0 for v in values], height=0.4,
                       color=ARMS[arm], label=label)
        rates.set_yticks(y, names)
        rates.invert_yaxis()
        rates.set_xlabel("converted within the attribution window (%)")
        _key(rates, at=(0.0, 1.0), corner="lower left", fontsize=8, across=True)
        rates.grid(axis="x", alpha=0.3)
        for i, name in enumerate(names):
            value = _pct(campaigns[name].get("lift"))
            ci = campaigns[name].get("lift_ci95")
            if value is None:
                continue
            if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci:
                low, high = _pct(ci[0]) or 0.0, _pct(ci[1]) or 0.0
                lift.errorbar([value], [i], xerr=[[value - low], [high - value]], fmt="o",
                              color=ARMS["treated"], capsize=3)
            else:
                lift.plot([value], [i], "o", color=ARMS["treated"])
        lift.axvline(0.0, color="#555555", lw=0.8)
        lift.set_yticks(y, names)
        lift.set_ylim(len(names) - 0.5, -0.5)
        lift.set_xlabel("lift: treated minus held-out rate (points), 95% CI")
        lift.grid(axis="x", alpha=0.3)
        return _svg(fig)


def compare_segments(
    days: Sequence[str], a: Mapping[str, Sequence[int]], b: Mapping[str, Sequence[int]],
    labels: tuple[str, str],
) -> str:
    """Small multiples: each segment's size per day under rule set A and B."""
    segments = sorted(set(a) | set(b))
    cols = 3
    rows = -(-len(segments) // cols)
    with _figure("compare-segments", 0.7 + 2.0 * rows, rows=rows, cols=cols, left=0.6,
                 wspace=0.6, sharex=True) as (fig, axes):
        x = range(len(days))
        for ax, segment in zip(axes, segments, strict=False):
            if segment in a:
                ax.step(x, a[segment], where="post", color=ARMS["a"], label=labels[0])
            if segment in b:
                ax.step(x, b[segment], where="post", color=ARMS["b"], ls="--", label=labels[1])
            ax.set_title(segment, loc="left", fontsize=9, y=1.0)
            _day_axis(ax, days, ticks=3)
        for ax in axes[len(segments):]:
            ax.set_visible(False)
        if segments:
            _key(axes[0], at=(0.0, 1.0), fontsize=8)
        return _svg(fig)


def compare_bars(
    title: str, names: Sequence[str], a: Sequence[float | None], b: Sequence[float | None],
    labels: tuple[str, str], xlabel: str,
) -> str:
    """Paired horizontal bars of one figure per name under A and B (None: no bar)."""
    with _figure(f"compare-{title}", 1.0 + 0.4 * max(len(names), 1), right=2.4,
                 left=_labels_width(names), bottom=0.55) as (fig, (ax,)):
        y = list(range(len(names)))
        ax.barh([v - 0.2 for v in y], [v or 0.0 for v in a], height=0.4, color=ARMS["a"],
                label=labels[0])
        ax.barh([v + 0.2 for v in y], [v or 0.0 for v in b], height=0.4, color=ARMS["b"],
                label=labels[1])
        ax.set_yticks(y, list(names))
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        _key(ax)
        return _svg(fig)


def _pct(value: Any) -> float | None:
    return float(value) * 100.0 if isinstance(value, int | float) else None
