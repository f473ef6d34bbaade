"""Determinism and recovery: same input, same outputs; a restart from the store changes nothing."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine.outputs import Outputs
from streams.runtime import Runtime as Router
from tests.unit.engine.helpers import DAY, HOUR, T0, rules

RULES = rules(
    """
segments:
  - name: viewer
    when: views >= 2
  - name: buyer
    when: orders >= 1 and rfm.f >= 1
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 2h
    unless: [Order Completed]
    offer: free-shipping
    cooldown: 1d
  - name: winback
    kind: winback
    on: Order Completed
    wait: 5d
    unless: [Order Completed]
    offers:
      - {if: "in_segment('viewer')", offer: vip}
      - {offer: plain}
suppression:
  frequency_cap: {max: 2, per: 3d}
  holdout: 0.3
"""
)

NAMES = ["Product Viewed", "Product Added", "Order Completed", "Order Refunded", "Page"]


@st.composite
def streams_(draw):
    n = draw(st.integers(1, 60))
    t = T0
    events = []
    for i in range(n):
        t += draw(st.floats(0, 2 * DAY))
        kind = draw(st.sampled_from(["track", "track", "track", "identify"]))
        uid = draw(st.sampled_from(["u1", "u2", "u3", "a1", "a2"]))
        ev = {
            "type": kind,
            "timestamp": f"{_iso(t)}",
            "messageId": draw(st.sampled_from([f"m{i}", "dup"])),
        }
        if uid.startswith("a"):
            ev["anonymousId"] = uid
            if kind == "identify":
                ev["userId"] = draw(st.sampled_from(["u1", "u2"]))
        else:
            ev["userId"] = uid
        if kind == "track":
            ev["event"] = draw(st.sampled_from(NAMES))
            ev["properties"] = {
                "order_id": f"o{draw(st.integers(0, 3))}",
                "revenue": 10,
                "product_id": "p",
                "category": "road",
                "price": 99,
            }
        else:
            ev["traits"] = {"unsubscribed": draw(st.booleans())}
        events.append(ev)
    return events


def _iso(t: float) -> str:
    from streams.engine.events import iso

    return iso(t)


def _dump(out: Outputs) -> list[bytes]:
    return [orjson.dumps(r) for _, _, r in out.records()]


def _run(events, restart_every: int | None = None) -> list[bytes]:
    router = Router(RULES, 3)
    lines: list[bytes] = []
    for i, ev in enumerate(events):
        lines += _dump(router.process(ev))
        if restart_every and i % restart_every == 0:
            router.flush()
            stores = [e.store for e in router.engines.values()]
            router = Router(RULES, 3, store_factory=stores.__getitem__)
    lines += _dump(router.advance(T0 + 400 * DAY))
    return lines


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams_())
def test_same_input_same_outputs(events):
    assert _run(events) == _run(events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams_(), st.integers(1, 7))
def test_restart_from_store_gives_the_same_outputs(events, every):
    assert _run(events, restart_every=every) == _run(events)


def test_outputs_are_not_empty_for_a_busy_stream():
    events = []
    for i in range(50):
        t = T0 + i * HOUR
        events.append(
            {
                "type": "track",
                "event": "Product Added",
                "userId": f"u{i % 5}",
                "timestamp": _iso(t),
                "messageId": f"m{i}",
                "properties": {},
            }
        )
    lines = _run(events)
    assert any(b'"campaign":"cart"' in line for line in lines)
