"""A consumer as the rules see it: every feature of the registry read through the View, traits,
segments and pending timers, at one instant. Read-only: taking a snapshot changes nothing.

The live worker answers `GET /v1/profiles/{id}` with it and publishes it on the `profiles` topic;
replay writes one per consumer to `profiles.jsonl` at the end. Both read the features at the
stream clock (event time), so the same input gives the same values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from streams.engine.clv import CustomerModels
from streams.engine.events import iso
from streams.engine.population import Population
from streams.engine.registry import FEATURES
from streams.engine.state import ConsumerState
from streams.engine.view import View

#: the timer kinds of a snapshot: a trigger's timer, the time-driven segments' next re-check,
#: and the profile_ttl erasure check
TRIGGER, RECHECK, PROFILE_TTL = "trigger", "recheck", "profile_ttl"


def _json(value: Any) -> Any:
    """A feature value as JSON holds it: an infinite or undefined number becomes null
    (`days_since_last_order` of a consumer who never ordered), and a whole number is written
    as an integer, so the same value has the same bytes whether the engine is compiled
    (`cart_value` of an empty cart: 0.0) or not (0)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 2.0**53:
            return int(value)
    return value


def features(
    state: ConsumerState, now: float, population: Population, models: CustomerModels
) -> dict[str, Any]:
    """Every feature of the registry, by the name rules use, as the View reads it at `now`."""
    view = View(state, now, population, models, set(state.segments))
    return {name: _json(getattr(view, f.attr)) for name, f in FEATURES.items()}


def timers(state: ConsumerState, kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """The consumer's pending timers in due order; `kinds`: trigger name -> its kind."""
    out: list[dict[str, Any]] = [
        {
            "kind": TRIGGER,
            "name": name,
            "trigger_kind": kinds.get(name),
            "due": iso(t.due),
            "armed_at": iso(t.armed_at),
            "products": list(t.products),
        }
        for name, t in state.timers.items()
    ]
    if state.recheck:
        out.append({"kind": RECHECK, "name": "segments", "due": iso(state.recheck)})
    if state.ttl_due:
        out.append({"kind": PROFILE_TTL, "name": "profile_ttl", "due": iso(state.ttl_due)})
    out.sort(key=lambda t: (t["due"], t["kind"], t["name"]))
    return out


def snapshot(
    state: ConsumerState,
    now: float,
    population: Population,
    models: CustomerModels,
    trigger_kinds: Mapping[str, str],
) -> dict[str, Any]:
    """The consumer at `now`: `{consumer_id, at, email, consented, features, traits,
    segments (names, in the rules' order), entered (segment -> when it was entered; None for
    a state written before that was kept), timers}`."""
    return {
        "consumer_id": state.id,
        "at": iso(now),
        "email": state.email,
        "consented": state.consented,
        "features": features(state, now, population, models),
        "traits": dict(state.traits),
        "segments": list(state.segments),
        "entered": {
            seg: iso(state.entered[seg]) if seg in state.entered else None
            for seg in state.segments
        },
        "timers": timers(state, trigger_kinds),
    }
