"""Orders from Segment events, per consumer and UTC day, as the customer models read them.

An order is an `Order Completed` event, identified by its `order_id` (else its messageId, as the
engine does) and valued as the engine values it (`revenue`, else `total`, else its products);
the same order reported twice counts once, and an `Order Refunded` or `Order Cancelled` with
its `order_id` removes it, whenever it comes. Identify and alias events that carry two ids join
their consumers, as the engine's identity merge does. Orders of a consumer on one UTC day are
one transaction of that day's total value (x counts repeat days, as in the literature).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.engine.bgnbd import WEEK, model_inputs, order_day
from streams.engine.events import Event, EventError, decode_event, parse_event
from streams.engine.features import order_value

REVERSALS = ("Order Refunded", "Order Cancelled")


@dataclass
class History:
    """What the events say about orders: per raw consumer id, order id -> (time, value)."""

    orders: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    reversed: dict[str, set[str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # merged id -> the id it went into
    events: int = 0
    bad: int = 0

    def add(self, ev: Event) -> None:
        self.events += 1
        source = ev.merge_source
        target = ev.consumer_id
        if source is not None and source != target:
            self.links[source] = target
        if ev.type != "track":
            return
        if ev.name == "Order Completed":
            oid = _text(ev.properties.get("order_id")) or ev.message_id
            mine = self.orders.setdefault(ev.consumer_id, {})
            if oid not in mine:
                mine[oid] = (ev.timestamp, order_value(ev.properties))
        elif ev.name in REVERSALS:
            reversed_id = _text(ev.properties.get("order_id"))
            if reversed_id is not None:
                self.reversed.setdefault(ev.consumer_id, set()).add(reversed_id)

    def _root(self, cid: str) -> str:
        seen = {cid}
        while cid in self.links and self.links[cid] not in seen:
            cid = self.links[cid]
            seen.add(cid)
        return cid

    def days(self) -> dict[str, dict[int, float]]:
        """Per consumer (after identity merges): UTC day -> total value of its orders, refunded
        and cancelled orders left out."""
        merged: dict[str, dict[str, tuple[float, float]]] = {}
        gone: dict[str, set[str]] = {}
        for cid, oids in self.reversed.items():
            gone.setdefault(self._root(cid), set()).update(oids)
        for cid, orders in self.orders.items():
            mine = merged.setdefault(self._root(cid), {})
            for oid, rec in orders.items():
                mine.setdefault(oid, rec)
        out: dict[str, dict[int, float]] = {}
        for cid, orders in merged.items():
            removed = gone.get(cid, set())
            days: dict[int, float] = {}
            for oid, (t, value) in orders.items():
                if oid not in removed:
                    day = order_day(t)
                    days[day] = days.get(day, 0.0) + value
            if days:
                out[cid] = days
        return out


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def read_history(values: Iterable[bytes | str | dict[str, Any]]) -> History:
    """The order history of JSON lines or decoded Segment objects; bad ones are counted."""
    history = History()
    for value in values:
        try:
            ev = parse_event(value) if isinstance(value, dict) else decode_event(value)
        except EventError:
            history.bad += 1
            continue
        history.add(ev)
    return history


@dataclass(frozen=True, slots=True)
class Customer:
    """One customer at the calibration end: x repeat days, t_x and T in weeks, the mean value
    of the repeat days, and the repeat days in the holdout period."""

    id: str
    x: int
    t_x: float
    T: float
    mean: float
    holdout: int


def summarize(
    days: dict[str, dict[int, float]], calibration_end: int, holdout_end: int | None = None
) -> list[Customer]:
    """Customers whose first order day is at or before `calibration_end` (a UTC day number),
    with (x, t_x, T) as the engine computes them at the start of that day."""
    out: list[Customer] = []
    now = calibration_end * 86400.0
    for cid in sorted(days):
        per_day = days[cid]
        fitted = sorted(d for d in per_day if d <= calibration_end)
        if not fitted:
            continue
        first, last = fitted[0] * 86400.0, fitted[-1] * 86400.0
        x, t_x, T = model_inputs(len(fitted), first, last, now)
        mean = sum(per_day[d] for d in fitted[1:]) / x if x else 0.0
        holdout = 0
        if holdout_end is not None:
            holdout = sum(1 for d in per_day if calibration_end < d <= holdout_end)
        out.append(Customer(cid, x, t_x, T, mean, holdout))
    return out


__all__ = ["WEEK", "Customer", "History", "read_history", "summarize"]
