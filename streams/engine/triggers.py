"""Trigger decisions: arming, stable ids, holdout, offer tiers and suppression.

Suppression is checked in this order: consent, cooldown, frequency cap.
"""

from __future__ import annotations

import hashlib
from typing import Any

from streams.engine.events import Event
from streams.engine.rules import Suppression, Trigger
from streams.engine.state import MAX_PRODUCTS, ConsumerState, Timer
from streams.engine.view import View

# copying a fresh hash object costs less than making one (parsing the keyword arguments)
_STABLE_HASH = hashlib.blake2b(digest_size=16)


def stable_hash(*parts: str) -> bytes:
    h = _STABLE_HASH.copy()
    h.update("\x1f".join(parts).encode())
    return h.digest()


def trigger_id(campaign: str, consumer_id: str, arm_id: str) -> str:
    """Same campaign, consumer and arming event -> same id, wherever it is computed."""
    return stable_hash(campaign, consumer_id, arm_id).hex()


def in_holdout(campaign: str, consumer_id: str, share: float) -> bool:
    """Stable per (campaign, consumer): the same consumer is always in or out of a campaign."""
    if share <= 0:
        return False
    bucket = int.from_bytes(stable_hash("holdout", campaign, consumer_id)[:8], "big")
    return bucket / 2**64 < share


def in_global_control(consumer_id: str, share: float) -> bool:
    """Stable per consumer, whatever the rules or campaign: the global control group (a hash
    independent of the campaigns' holdout hash, with a fixed salt, so a rules change keeps
    every consumer in or out of it)."""
    if share <= 0:
        return False
    bucket = int.from_bytes(stable_hash("global_control", consumer_id)[:8], "big")
    return bucket / 2**64 < share


def holdout_reason(campaign: str, consumer_id: str, rules: Suppression) -> str | None:
    """Why a trigger is held out: `global_control` (the consumer is in the global control
    group), `holdout` (in the campaign's holdout share), or None (delivered)."""
    if in_global_control(consumer_id, rules.global_control):
        return "global_control"
    if in_holdout(campaign, consumer_id, rules.holdout):
        return "holdout"
    return None


# a tuple, not `str | int`: that expression would build a new union object on every call
_ID_TYPES = (str, int)


def event_products(ev: Event) -> list[str]:
    """product_id strings an event names (its own, or those of its products[]), as parse_event
    read them."""
    out: list[str] = []
    pid = ev.product_id
    if isinstance(pid, _ID_TYPES) and not isinstance(pid, bool):
        out.append(str(pid))
    items = ev.products
    if isinstance(items, list):
        for p in items:
            if isinstance(p, dict):
                q = p.get("product_id")
                if isinstance(q, _ID_TYPES) and not isinstance(q, bool):
                    out.append(str(q))
    return out


def arm(state: ConsumerState, trig: Trigger, ev: Event) -> Timer:
    """Arm, or re-arm (the timer restarts; products accumulate), `trig` for this event.

    A re-armed timer is a new object with a new products list: a Timer is never changed once
    in a consumer's timers, so a shallow copy of them keeps them as they were (undo.py)."""
    timer = state.timers.get(trig.name)
    products = timer.products.copy() if timer is not None else []
    for p in event_products(ev):
        if p in products:
            products.remove(p)
        products.append(p)
    if len(products) > MAX_PRODUCTS:
        products = products[-MAX_PRODUCTS:]
    t = ev.timestamp
    timer = state.timers[trig.name] = Timer(t + trig.wait, t, ev.message_id, products)
    return timer


def choose_offer(trig: Trigger, view: View) -> str | None:
    """The first tier whose condition holds (a tier without one always holds)."""
    for tier in trig.offers:
        if tier.when is None or bool(tier.when.fn.ev(view)):
            return tier.offer
    return None


def suppression_reason(
    state: ConsumerState, trig: Trigger, at: float, rules: Suppression
) -> str | None:
    """Why a trigger due `at` must not go out, or None. Prunes the frequency-cap log."""
    if not state.consented:
        return "consent"
    if trig.cooldown is not None:
        last = state.last_fired.get(trig.name)
        if last is not None and at - last < trig.cooldown:
            return "cooldown"
    if rules.cap_max is not None and rules.cap_per is not None:
        horizon = at - rules.cap_per
        state.fired = [t for t in state.fired if t > horizon]
        if len(state.fired) >= rules.cap_max:
            return "frequency_cap"
    return None


def record_fired(state: ConsumerState, trig: Trigger, at: float) -> None:
    state.last_fired[trig.name] = at
    state.fired.append(at)


def trigger_record(
    trig: Trigger,
    consumer_id: str,
    timer: Timer,
    offer: str | None,
    segments: list[str],
    holdout: bool,
    at_iso: str,
    version: str,
    reason: str | None = None,
    attribution_until: str | None = None,
) -> dict[str, Any]:
    """The trigger record (`reason`: why held out, None when delivered; `attribution_until`:
    the end of its attribution window)."""
    return {
        "trigger_id": trigger_id(trig.name, consumer_id, timer.arm_id),
        "kind": trig.kind,
        "campaign": trig.name,
        "consumer_id": consumer_id,
        "fired_at": at_iso,
        "due_at": at_iso,
        "offer": offer,
        "products": list(timer.products),
        "segments": segments,
        "holdout": holdout,
        "reason": reason,
        "attribution_until": attribution_until,
        "rules_version": version,
    }
