"""CampaignResults: triggers and the conversions attributed to them, as campaign figures.

Fed with output records (trigger records of both arms, conversion records) in any order and
any number of times (a record seen again is counted once: triggers by `trigger_id`,
conversions by `(trigger_id, order_id, converted_at)`), so replay, the worker and the console
reading the topics all get the same figures from the same records.

A trigger counts once its attribution window has closed: `report(until)` counts the triggers
whose `attribution_until <= until` (all of them when `until` is None), and a trigger is
*converted* when at least one conversion is attributed to it. Per campaign and per offer:

- `treated`, `holdout`: trigger counts of each arm (holdout: the campaign's holdout share and
  the global control group);
- `converted_treated`, `converted_holdout`; `conversion_rate_*` = converted / triggers;
- `revenue_per_trigger_*`: attributed revenue of the arm / its triggers;
- `lift` = conversion_rate_treated - conversion_rate_holdout, `lift_ci95` its Newcombe hybrid
  score interval, `relative_lift` = lift / conversion_rate_holdout, `p_value` of the pooled
  two-proportion z-test (stats.py);
- `incremental_revenue` = (revenue_per_trigger_treated - revenue_per_trigger_holdout) * treated.

Rates and lift are None when an arm is empty (and relative_lift when the holdout rate is 0).
Memory: one small tuple per trigger and one float per conversion, kept for the process's life.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.engine.events import EventError, parse_time
from streams.engine.outputs import Outputs
from streams.measure.stats import lift as lift_of

#: the keys of one campaign's (or offer's) figures, in report order
FIGURES = (
    "treated", "holdout", "converted_treated", "converted_holdout", "conversion_rate_treated",
    "conversion_rate_holdout", "revenue_per_trigger_treated", "revenue_per_trigger_holdout",
    "lift", "lift_ci95", "relative_lift", "p_value", "incremental_revenue",
)

# trigger_id -> (campaign, offer, holdout, attribution_until as epoch seconds or inf)
_Trigger = tuple[str, str, bool, float]


class CampaignResults:
    """Campaign figures over trigger and conversion records (see the module's docstring)."""

    __slots__ = ("_conversions", "_triggers")

    def __init__(self) -> None:
        self._triggers: dict[str, _Trigger] = {}
        self._conversions: dict[tuple[str, str, str], float] = {}

    def add_trigger(self, trigger: Mapping[str, Any]) -> None:
        """A trigger record (treated or holdout) with its `attribution_until`."""
        until = _time(trigger.get("attribution_until"))
        offer = trigger.get("offer")
        self._triggers[str(trigger["trigger_id"])] = (
            str(trigger["campaign"]), "" if offer is None else str(offer),
            bool(trigger.get("holdout")), until,
        )

    def add_conversion(self, conversion: Mapping[str, Any]) -> None:
        """A conversion record: an order attributed to a trigger."""
        revenue = conversion.get("revenue")
        value = float(revenue) if isinstance(revenue, int | float) else 0.0
        key = (str(conversion["trigger_id"]), str(conversion.get("order_id")),
               str(conversion.get("converted_at")))
        self._conversions[key] = value if math.isfinite(value) else 0.0

    def merge(self, other: CampaignResults) -> None:
        """Add `other`'s records to these (records both hold count once)."""
        self._triggers.update(other._triggers)
        self._conversions.update(other._conversions)

    def __len__(self) -> int:
        return len(self._triggers)

    def report(self, until: datetime | None = None) -> dict[str, dict[str, Any]]:
        """{campaign: {figures..., offers: {offer: {figures...}}}} over the triggers whose
        attribution window closed by `until` (None: every trigger); campaigns sorted by name."""
        cutoff = math.inf if until is None else _epoch(until)
        revenue: dict[str, list[float]] = {}
        for (trigger_id, _, _), value in self._conversions.items():
            revenue.setdefault(trigger_id, []).append(value)
        # (campaign, offer) -> [treated, holdout, converted_t, converted_h, revenues_t, revenues_h]
        arms: dict[tuple[str, str], _Arms] = {}
        for trigger_id, (campaign, offer, holdout, closes) in self._triggers.items():
            if closes > cutoff:
                continue
            arm = arms.get((campaign, offer))
            if arm is None:
                arm = arms[(campaign, offer)] = _Arms()
            arm.add(holdout, revenue.get(trigger_id))
        out: dict[str, dict[str, Any]] = {}
        for campaign in sorted({c for c, _ in arms}):
            total = _Arms()
            offers: dict[str, Any] = {}
            for (c, offer), arm in sorted(arms.items()):
                if c == campaign:
                    total.absorb(arm)
                    offers[offer] = arm.figures()
            figures = total.figures()
            figures["offers"] = offers
            out[campaign] = figures
        return out


class _Arms:
    """Counts of the two arms of one campaign (or offer)."""

    __slots__ = ("converted", "revenues", "triggers")

    def __init__(self) -> None:
        self.triggers = [0, 0]  # [treated, holdout]
        self.converted = [0, 0]
        self.revenues: tuple[list[float], list[float]] = ([], [])

    def add(self, holdout: bool, revenues: list[float] | None) -> None:
        i = 1 if holdout else 0
        self.triggers[i] += 1
        if revenues:
            self.converted[i] += 1
            self.revenues[i].extend(revenues)

    def absorb(self, other: _Arms) -> None:
        for i in (0, 1):
            self.triggers[i] += other.triggers[i]
            self.converted[i] += other.converted[i]
            self.revenues[i].extend(other.revenues[i])

    def figures(self) -> dict[str, Any]:
        (nt, nh), (xt, xh) = self.triggers, self.converted
        # fsum: exact, so the figures do not depend on the order records came in
        rev_t, rev_h = math.fsum(self.revenues[0]), math.fsum(self.revenues[1])
        rpt_t = rev_t / nt if nt else None
        rpt_h = rev_h / nh if nh else None
        measured = lift_of(xt, nt, xh, nh)
        return {
            "treated": nt,
            "holdout": nh,
            "converted_treated": xt,
            "converted_holdout": xh,
            "conversion_rate_treated": xt / nt if nt else None,
            "conversion_rate_holdout": xh / nh if nh else None,
            "revenue_per_trigger_treated": rpt_t,
            "revenue_per_trigger_holdout": rpt_h,
            "lift": None if measured is None else measured.lift,
            "lift_ci95": None if measured is None else list(measured.ci95),
            "relative_lift": None if measured is None else measured.relative,
            "p_value": None if measured is None else measured.p_value,
            "incremental_revenue": (
                None if rpt_t is None or rpt_h is None else (rpt_t - rpt_h) * nt
            ),
        }


def _time(value: Any) -> float:
    """An ISO-8601 time of a record as epoch seconds; inf (never closes) when missing or bad."""
    if not isinstance(value, str):
        return math.inf
    try:
        return parse_time(value, "attribution_until")
    except EventError:
        return math.inf


def _epoch(until: datetime) -> float:
    return (until if until.tzinfo else until.replace(tzinfo=UTC)).timestamp()


def feed(results: CampaignResults, out: Outputs) -> None:
    """Add the triggers and conversions of one engine (or runtime) call to `results`."""
    for trigger in out.triggers:
        results.add_trigger(trigger)
    for conversion in out.conversions:
        results.add_conversion(conversion)
