"""The undo of a failed event covers every field of the state and every kind of event."""

from __future__ import annotations

from typing import Any

import pytest

from streams.engine.events import iso
from streams.engine.state import FIELDS, ConsumerState
from streams.engine.undo import Undo
from tests.unit.engine.helpers import MIN, T0, engine, identify, track
from tests.unit.engine.test_restore import fail_on


def _other(value: Any) -> Any:
    """A value of the same type as `value` and different from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, dict):
        return {"other": 1}
    if isinstance(value, list):
        return ["other"]
    if isinstance(value, int | float):
        return value + 1
    return "other"


def test_every_field_of_the_state_comes_back():
    state = ConsumerState("u", T0)
    state.lat = state.lon = state.first_order = state.last_order = 1.0  # (None: no other)
    state.email = state.country = state.city = "x"
    before = {f.name: getattr(state, f.name) for f in FIELDS}
    undo = Undo(state, -1, True)
    for f in FIELDS[1:]:
        setattr(state, f.name, _other(before[f.name]))
    assert undo.restore("no such id") is state
    assert {f.name: getattr(state, f.name) for f in FIELDS} == before


def _history() -> list[dict[str, Any]]:
    t = T0
    return [
        track("u", "Product Viewed", t, product_id="p1", price=120.0, category="Road",
              brand="Volt"),
        track("u", "Product Added", t + MIN, product_id="p1", price=120.0, quantity=2),
        track("u", "Product Added", t + 2 * MIN, product_id="p2", price=30.0),
        track("u", "Order Completed", t + 3 * MIN, order_id="o1", revenue=150.0, coupon="X",
              products=[{"product_id": "p1", "price": 120.0, "category": "road"}]),
        identify("u", t + 4 * MIN, email="u@example.com", plan={"tier": "gold"}),
        {**track("u", "Page", t + 5 * MIN),
         "context": {"location": {"country": "DE", "city": "Berlin", "latitude": 52.5,
                                  "longitude": 13.4},
                     "consent": {"categoryPreferences": {"marketing": True}}}},
        track("u", "Product List Viewed", t + 6 * MIN, category="gravel"),
    ]


T = T0 + 10 * MIN
FAILING = {
    "view": track("u", "Product Viewed", T, product_id="p3", price=900.0, category="road"),
    "click": track("u", "Product Clicked", T, product_id="p1", price=5.0, brand="volt"),
    "list": track("u", "Product List Viewed", T, category="mountain"),
    "add": track("u", "Product Added", T, product_id="p1", price=120.0),
    "remove": track("u", "Product Removed", T, product_id="p2"),
    "order": track("u", "Order Completed", T, order_id="o2", revenue=99.0, discount=5.0,
                   products=[{"product_id": "p2", "price": 30.0, "brand": "x"}]),
    "refund": track("u", "Order Refunded", T, order_id="o1"),
    "cancel": track("u", "Order Cancelled", T, order_id="o1"),
    "identify": identify("u", T, email="new@example.com", country="FR", unsubscribed=True,
                         plan={"tier": "silver"}),
    "traits on a track": {**track("u", "Product Viewed", T, price=1.0),
                          "traits": {"gender": "female"}},
    "location and consent": {**track("u", "Page", T),
                             "context": {"location": {"country": "FR", "city": "Paris",
                                                      "latitude": 48.8, "longitude": 2.3},
                                         "consent": {"categoryPreferences":
                                                     {"marketing": False}}}},
    "screen": {"type": "screen", "userId": "u", "name": "Home", "timestamp": iso(T),
               "messageId": "screen-1"},
}
RULES = """
segments:
  - name: last
    when: events >= {n}
  - name: road
    when: affinity("road") >= 0.5
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    unless: [Order Completed, Product Removed]
    offer: free-shipping
  - name: browse
    kind: retargeting
    on: [Product Viewed, Product Clicked, Product List Viewed]
    wait: 2h
    unless: [Product Added]
    offer: reminder
  - name: winback
    kind: winback
    on: Order Completed
    wait: 60d
    unless: [Order Refunded, Order Cancelled, identify, Page]
    offer: comeback
"""


@pytest.mark.parametrize("pad", [0, 56], ids=["", "with a pruning of the seen ids"])
@pytest.mark.parametrize("kind", list(FAILING))
def test_each_kind_of_event_failing_last_leaves_the_state_as_before(kind, pad):
    history = _history()
    history += [track("u", "Page", T0 + 7 * MIN + i) for i in range(pad)]
    eng = engine(RULES.replace("{n}", str(len(history) + 1)))
    for ev in history:
        assert not eng.process(ev).dead_letters
    state = eng.consumer("u")
    assert state is not None
    before, population = state.to_bytes(), eng.population.to_bytes()
    fail_on(eng, "entered:last")  # counted once the event changed everything else
    out = eng.process(FAILING[kind])
    assert [d["reason"] for d in out.dead_letters] == ["internal_error"]
    after = eng.consumer("u")
    assert after is not None and after.to_bytes() == before
    assert eng.population.to_bytes() == population
