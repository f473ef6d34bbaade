"""Conversion attribution, in event time: orders attributed to the triggers they follow.

Every fired trigger, treated or held out (never a suppressed one), opens an attribution
window in its consumer's state: `[until, trigger_id, campaign, kind, offer, holdout, fired_at]`
with `until = fired_at + attribution_window` (the trigger's own, else
`settings.attribution_window`, default 7d). An `Order Completed` at t is attributed to every
open window with

    fired_at < t <= until

one conversion record per (order, window): an order at the very instant of firing (or before)
never counts (the consumer cannot have seen the message), an order at exactly `until` does. An
order counts once per window however often it is reported (the engine's order dedupe, by
`order_id`, comes first).

Windows close in event time through the due-time index (entry name WINDOWS, due just after the
earliest `until`), so a consumer who never orders again does not keep them. A consumer keeps at
most MAX_WINDOWS open windows (the ones closing last win; an identity merge carries the merged
profile's windows along under the same bound).
"""

from __future__ import annotations

import math
from typing import Any, Final

from streams.engine.events import Event, iso
from streams.engine.features import _str, order_value
from streams.engine.state import ConsumerState

#: the name of a consumer's window-closing entry in the due-time index (sorts before TTL)
WINDOWS: Final = "~attr"
#: open attribution windows one consumer keeps at most
MAX_WINDOWS = 32

_UNTIL = 0
_FIRED = 6


def window_of(default: float, own: float | None) -> float:
    """A trigger's attribution window in seconds: its own, else the settings' default."""
    return default if own is None else own


def open_window(state: ConsumerState, record: dict[str, Any], fired: float, until: float) -> bool:
    """Open the window of a fired trigger `record`; True when it closes before every other open
    window (its index entry is then the consumer's next)."""
    windows = state.windows
    first = not windows or until < windows[0][_UNTIL]
    windows.append([until, record["trigger_id"], record["campaign"], record["kind"],
                    record["offer"], record["holdout"], fired])
    _bound(state)
    return first


def _bound(state: ConsumerState) -> None:
    """Sort the windows by closing time (then trigger id) and keep the MAX_WINDOWS last."""
    windows = state.windows
    windows.sort(key=_order)
    if len(windows) > MAX_WINDOWS:
        del windows[: len(windows) - MAX_WINDOWS]


def _order(window: list[Any]) -> tuple[float, str]:
    return (float(window[_UNTIL]), str(window[1]))


def close_due(state: ConsumerState) -> float:
    """The due time of the consumer's WINDOWS entry: just after its earliest `until` (0: none),
    so an order at exactly `until` is applied before the window closes."""
    if not state.windows:
        return 0.0
    return math.nextafter(float(state.windows[0][_UNTIL]), math.inf)


def close(state: ConsumerState, due: float) -> bool:
    """Drop the windows closed at `due` (until < due); True when some were dropped."""
    windows = state.windows
    n = 0
    while n < len(windows) and float(windows[n][_UNTIL]) < due:
        n += 1
    if n:
        del windows[:n]
    return n > 0


def convert(state: ConsumerState, ev: Event) -> list[dict[str, Any]]:
    """The conversion records of an Order Completed, before the features take it in (none
    when the same order was reported before: the features' dedupe key)."""
    order_id = _str(ev.properties.get("order_id"))
    if (order_id or ev.message_id) in state.recent_orders:
        return []
    t = ev.timestamp
    out: list[dict[str, Any]] = []
    revenue = 0.0
    converted_at = ""
    for w in state.windows:
        if not float(w[_FIRED]) < t <= float(w[_UNTIL]):
            continue
        if not out:
            revenue = float(order_value(ev.properties))
            converted_at = iso(t)
        out.append({
            "trigger_id": w[1],
            "campaign": w[2],
            "kind": w[3],
            "offer": w[4],
            "consumer_id": state.id,
            "holdout": w[5],
            "fired_at": iso(float(w[_FIRED])),
            "converted_at": converted_at,
            "order_id": order_id,
            "revenue": revenue,
        })
    return out


def merge_windows(into: ConsumerState, other: ConsumerState) -> None:
    """Carry the open windows of a merged profile along (bounded like any consumer's)."""
    if not other.windows:
        return
    have = {str(w[1]) for w in into.windows}
    into.windows.extend(list(w) for w in other.windows if str(w[1]) not in have)
    _bound(into)
