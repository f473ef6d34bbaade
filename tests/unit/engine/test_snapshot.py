"""A consumer as the rules see it: every registry feature through the View, timers, traits."""

from __future__ import annotations

import orjson

from streams.engine.events import iso
from streams.engine.population import Population
from streams.engine.registry import FEATURES
from streams.engine.snapshot import features, snapshot, timers
from streams.engine.state import ConsumerState, Timer
from streams.engine.view import View
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, HOUR, MIN, T0, identify, rules, track

RULES = rules(
    """
segments:
  - name: browser
    when: views >= 2
  - name: quiet
    when: days_since_last_seen >= 3
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    unless: [Order Completed]
    offer: free-shipping
"""
)


def test_a_snapshot_holds_every_feature_of_the_registry_by_the_name_rules_use() -> None:
    state = ConsumerState("u1", T0)
    got = features(state, T0, Population(), RULES.settings.models)
    assert list(got) == list(FEATURES)
    assert "rfm.r" in got and "days_since_last_seen" in got


def test_feature_values_are_the_views_reads_at_the_instant_given() -> None:
    rt = Runtime(RULES, 1)
    rt.process(track("u1", "Product Viewed", T0, product_id="p", price=40.0, category="road"))
    rt.process(track("u1", "Order Completed", T0 + HOUR, order_id="o1", revenue=120.0))
    state = rt.engines[0].consumer("u1")
    assert state is not None
    now = T0 + 2 * DAY
    view = View(state, now, rt.population, RULES.settings.models, set(state.segments))
    got = features(state, now, rt.population, RULES.settings.models)
    for name, f in FEATURES.items():
        assert got[name] == getattr(view, f.attr), name
    assert got["orders"] == 1 and got["revenue"] == 120.0
    assert got["days_since_last_order"] == (now - (T0 + HOUR)) / DAY


def test_an_infinite_feature_is_null_so_the_snapshot_is_json() -> None:
    state = ConsumerState("never-ordered", T0)
    got = features(state, T0, Population(), RULES.settings.models)
    assert got["days_since_last_order"] is None  # (the rules read infinity)
    orjson.dumps(got)


def test_timers_list_trigger_timers_rechecks_and_the_ttl_check_in_due_order() -> None:
    state = ConsumerState("u1", T0)
    state.timers["cart"] = Timer(T0 + 30 * MIN, T0, "arm-1", ["p1"])
    state.recheck = T0 + 10 * MIN
    state.ttl_due = T0 + 90 * DAY
    got = timers(state, {"cart": "retargeting"})
    assert [(t["kind"], t["name"], t["due"]) for t in got] == [
        ("recheck", "segments", iso(T0 + 10 * MIN)),
        ("trigger", "cart", iso(T0 + 30 * MIN)),
        ("profile_ttl", "profile_ttl", iso(T0 + 90 * DAY)),
    ]
    assert got[1]["trigger_kind"] == "retargeting" and got[1]["products"] == ["p1"]
    assert got[1]["armed_at"] == iso(T0)


def test_a_snapshot_carries_traits_segments_contact_and_its_instant() -> None:
    rt = Runtime(RULES, 1)
    rt.process(identify("u1", T0, email="a@b.c", plan="pro"))
    for i in range(2):
        rt.process(track("u1", "Product Viewed", T0 + i + 1, product_id="p", price=10.0))
    rt.process(track("u1", "Product Added", T0 + 5, product_id="p", price=10.0))
    state = rt.engines[0].consumer("u1")
    assert state is not None
    snap = snapshot(state, T0 + MIN, rt.population, RULES.settings.models, {"cart": "retargeting"})
    assert snap["consumer_id"] == "u1" and snap["at"] == iso(T0 + MIN)
    assert snap["email"] == "a@b.c" and snap["traits"]["plan"] == "pro"
    assert snap["segments"] == ["browser"]
    assert [t["name"] for t in snap["timers"] if t["kind"] == "trigger"] == ["cart"]
    assert snap["features"]["views"] == 2


def test_a_whole_number_has_one_form_whatever_its_type() -> None:
    state = ConsumerState("u1", T0)  # an empty cart: 0 from source, 0.0 compiled
    got = features(state, T0, Population(), RULES.settings.models)
    assert orjson.dumps(got["cart_value"]) == b"0"
    assert orjson.dumps(got["avg_order_value"]) == b"0"
    state.revenue, state.orders = 25.5, 1
    assert features(state, T0, Population(), RULES.settings.models)["revenue"] == 25.5


def test_each_segment_carries_the_time_its_consumer_entered_it_and_loses_it_on_exit() -> None:
    rt = Runtime(RULES, 1)
    for i in range(3):
        rt.process(track("u1", "Product Viewed", T0 + i * MIN, product_id="p", price=40.0))
    snap = rt.profile("u1")
    assert snap is not None
    assert snap["segments"] == ["browser"] and snap["entered"] == {"browser": iso(T0 + MIN)}
    rt.advance(T0 + 4 * DAY)  # quiet from T0+2min+3d on: browser stays, its time unchanged
    snap = rt.profile("u1")
    assert snap is not None and snap["segments"] == ["browser", "quiet"]
    assert snap["entered"] == {"browser": iso(T0 + MIN), "quiet": iso(T0 + 2 * MIN + 3 * DAY)}
    rt.process(track("u1", "Product Viewed", T0 + 4 * DAY, product_id="p", price=40.0))
    state = rt.engines[0].consumer("u1")
    assert state is not None and set(state.entered) == {"browser"}  # out of quiet: forgotten


def test_a_state_kept_from_before_entry_times_shows_its_segments_with_no_time() -> None:
    state = ConsumerState("u1", T0)
    state.segments = ["browser"]
    old = orjson.loads(state.to_bytes())
    back = ConsumerState.from_bytes(orjson.dumps([5, *old[1:-1]]))  # version 5: no `entered`
    snap = snapshot(back, T0, Population(), RULES.settings.models, {})
    assert snap["entered"] == {"browser": None}
