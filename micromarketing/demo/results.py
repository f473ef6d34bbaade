"""Live campaign results for the demo: `streams.measure.results.CampaignResults` fed with the
trigger and conversion records read from the topics (when this build has it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.contract import ALL_TOPICS, TRIGGER_TOPICS

CONVERSIONS = "conversions"


def conversions_topic() -> str | None:
    """The conversions topic's base name, when this build's engine writes one."""
    return CONVERSIONS if CONVERSIONS in ALL_TOPICS else None


class LiveResults:
    """Campaign results over the records seen so far; `available` is False without the
    measurement module (then `report` is None)."""

    def __init__(self) -> None:
        try:
            from streams.measure.results import CampaignResults
        except ImportError:
            self._results: Any = None
        else:
            self._results = CampaignResults()

    @property
    def available(self) -> bool:
        return self._results is not None and conversions_topic() is not None

    def add(self, base: str, record: dict[str, Any]) -> None:
        """A record of an output topic (others are ignored)."""
        if self._results is None:
            return
        if base in TRIGGER_TOPICS:
            self._results.add_trigger(record)
        elif base == CONVERSIONS:
            self._results.add_conversion(record)

    def report(self, until: float | None) -> dict[str, dict[str, Any]] | None:
        """Per campaign, over the triggers whose attribution window closed by `until`."""
        if not self.available:
            return None
        at = None if until is None else datetime.fromtimestamp(until, UTC)
        return dict(self._results.report(at))


def points(x: Any) -> str:
    """A rate difference in points, signed ('-' when unknown)."""
    return "-" if not isinstance(x, int | float) else f"{x * 100:+.1f}"


def lift_text(row: dict[str, Any]) -> str:
    """`+9.8 [+4.1, +15.5]`: the lift and its 95% CI in points."""
    ci = row.get("lift_ci95")
    lift = points(row.get("lift"))
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{lift} [{points(ci[0])}, {points(ci[1])}]"
    return lift
