"""Conversion attribution: orders in a fired trigger's window, in event time, both arms."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from streams.engine.attribution import MAX_WINDOWS
from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.partitioning import partition_for
from streams.engine.rules import RulesError, loads_rules
from streams.engine.state import STATE_VERSION, ConsumerState
from streams.engine.store import MemoryStore
from streams.engine.triggers import in_global_control
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, HOUR, MIN, T0, anon_track, engine, identify, run, track

# `nudge` has no `unless`: an order before it fires leaves it armed
SETTINGS = "settings:\n  max_clock_skew: 30d\n"
RULES = SETTINGS + """
triggers:
  - name: nudge
    kind: retargeting
    on: Product Added
    wait: 1h
    offer: free-shipping
"""
FIRED = T0 + HOUR


def added(uid: str = "u", t: float = T0) -> dict[str, Any]:
    return track(uid, "Product Added", t, product_id="p", price=10)


def order(uid: str, t: float, order_id: str, revenue: float = 20.0) -> dict[str, Any]:
    return track(uid, "Order Completed", t, order_id=order_id, revenue=revenue)


def test_an_order_after_firing_within_the_window_is_one_conversion_of_that_trigger():
    eng = engine(RULES)
    out = run(eng, added(), order("u", FIRED + DAY, "o1", 42.5))
    (trig,) = out.triggers
    assert trig["attribution_until"] == iso(FIRED + 7 * DAY)
    assert trig["reason"] is None
    assert out.conversions == [{
        "trigger_id": trig["trigger_id"], "campaign": "nudge", "kind": "retargeting",
        "offer": "free-shipping", "consumer_id": "u", "holdout": False,
        "fired_at": iso(FIRED), "converted_at": iso(FIRED + DAY), "order_id": "o1",
        "revenue": 42.5,
    }]
    assert [k for k, _ in eng.stats.items() if k == "conversions"] == ["conversions"]


def test_an_order_before_firing_never_counts():
    out = run(engine(RULES), added(), order("u", T0 + 30 * MIN, "early"))
    assert len(out.triggers) == 0 and out.conversions == []
    out = run(engine(RULES), added(), order("u", T0 + 30 * MIN, "early"),
              order("u", FIRED + MIN, "late"))
    assert [c["order_id"] for c in out.conversions] == ["late"]


def test_an_order_at_the_instant_of_firing_does_not_count():
    # the trigger fires first (an event at t fires what is due at t), yet the consumer cannot
    # have reacted to it: the window is open after fired_at, not at it
    out = run(engine(RULES), added(), order("u", FIRED, "same-instant"))
    assert len(out.triggers) == 1 and out.conversions == []


def test_an_order_at_exactly_the_end_of_the_window_counts_and_a_millisecond_later_does_not():
    until = FIRED + 7 * DAY
    out = run(engine(RULES), added(), order("u", until, "edge"))
    assert [c["order_id"] for c in out.conversions] == ["edge"]
    out = run(engine(RULES), added(), order("u", until + 0.001, "after"))
    assert out.conversions == []


def test_every_order_in_the_window_converts_but_an_order_reported_twice_counts_once():
    out = run(engine(RULES), added(), order("u", FIRED + HOUR, "o1"),
              order("u", FIRED + 2 * HOUR, "o1"), order("u", FIRED + 3 * HOUR, "o2"))
    assert [c["order_id"] for c in out.conversions] == ["o1", "o2"]


def test_an_order_converts_for_every_open_trigger_of_the_consumer():
    text = RULES + """
  - name: winback
    kind: winback
    on: Product Viewed
    wait: 2h
    offer: comeback-10
"""
    out = run(engine(text), added(), track("u", "Product Viewed", T0, product_id="p"),
              order("u", T0 + 3 * HOUR, "o1"))
    assert sorted(c["campaign"] for c in out.conversions) == ["nudge", "winback"]


def test_the_window_is_the_triggers_own_else_the_settings_default():
    text = RULES + """
  - name: short
    kind: winback
    on: Product Viewed
    wait: 1h
    offer: x
    attribution_window: 1d
"""
    text = text.replace(SETTINGS, SETTINGS + "  attribution_window: 3d\n")
    out = run(engine(text), added(), track("u", "Product Viewed", T0, product_id="p"),
              order("u", FIRED + 2 * DAY, "o1"))
    until = {t["campaign"]: t["attribution_until"] for t in out.triggers}
    assert until == {"nudge": iso(FIRED + 3 * DAY), "short": iso(FIRED + DAY)}
    assert [c["campaign"] for c in out.conversions] == ["nudge"]


def test_held_out_triggers_are_attributed_too():
    text = RULES + "suppression:\n  holdout: 0.999999\n"
    out = run(engine(text), added(), order("u", FIRED + MIN, "o1"))
    (trig,) = out.triggers
    assert trig["holdout"] is True and trig["reason"] == "holdout"
    assert [(c["holdout"], c["trigger_id"]) for c in out.conversions] == [
        (True, trig["trigger_id"])]


def test_suppressed_triggers_open_no_window():
    text = RULES + "suppression:\n  frequency_cap: {max: 1, per: 7d}\n"
    out = run(engine(text), added(), added(t=FIRED + MIN), order("u", FIRED + 2 * HOUR, "o1"))
    assert len(out.triggers) == 1 and len(out.suppressed) == 1
    assert [c["trigger_id"] for c in out.conversions] == [out.triggers[0]["trigger_id"]]


def test_windows_close_in_event_time_and_leave_no_state_or_index_entry():
    eng = engine(RULES)
    run(eng, added())
    eng.advance(FIRED + MIN)
    state = eng.consumer("u")
    assert state is not None and len(state.windows) == 1
    assert eng.next_due() == math.nextafter(FIRED + 7 * DAY, math.inf)
    eng.advance(FIRED + 7 * DAY)
    assert len(state.windows) == 1  # still open at exactly its end
    eng.advance(FIRED + 7 * DAY + 0.001)
    assert state.windows == [] and eng.next_due() is None
    eng.flush()
    assert not [k for k, _ in eng.store.items() if k.startswith("t/")]


def test_open_windows_survive_a_restart_from_the_store():
    store = MemoryStore()
    first = engine(RULES, store)
    (trig,) = run(first, added(), track("u", "Page", FIRED + MIN)).triggers
    first.flush()
    again = Engine(loads_rules(RULES, "test.yaml"), store)
    assert again.next_due() == math.nextafter(FIRED + 7 * DAY, math.inf)
    out = run(again, order("u", FIRED + DAY, "o1"))
    assert [c["trigger_id"] for c in out.conversions] == [trig["trigger_id"]]


def test_a_merge_carries_the_open_windows_to_the_merged_consumer():
    anon, uid = "anon-1", next(f"user-{i}" for i in range(100)
                              if partition_for(f"user-{i}", 4) != partition_for("anon-1", 4))
    rt = Runtime(loads_rules(RULES, "test.yaml"), 4)
    fired = rt.process(anon_track(anon, "Product Added", T0, product_id="p"))
    fired.extend(rt.process(anon_track(anon, "Page", FIRED + MIN)))
    (trig,) = fired.triggers
    rt.process(identify(uid, FIRED + 2 * MIN, anon=anon))
    out = rt.process(order(uid, FIRED + HOUR, "o1"))
    assert [(c["trigger_id"], c["consumer_id"]) for c in out.conversions] == [
        (trig["trigger_id"], uid)]


def test_a_consumer_keeps_at_most_max_windows_open_windows_the_latest_closing():
    eng = engine(RULES)
    n = MAX_WINDOWS + 5
    out = run(eng, *[added(t=T0 + i * 2 * HOUR) for i in range(n)])
    out.extend(eng.advance(T0 + n * 2 * HOUR))
    assert len(out.triggers) == n
    state = eng.consumer("u")
    assert state is not None
    kept = [w[1] for w in state.windows]
    assert kept == [t["trigger_id"] for t in out.triggers][-MAX_WINDOWS:]


def test_the_global_control_group_is_held_out_of_every_campaign_with_its_reason():
    ids = [f"c{i}" for i in range(400)]
    members = [c for c in ids if in_global_control(c, 0.25)]
    assert 60 <= len(members) <= 140  # a quarter, give or take
    text = RULES + "suppression:\n  global_control: 0.25\n"
    eng = engine(text)
    out = run(eng, *[added(c) for c in ids])
    out.extend(eng.advance(FIRED))
    held = {t["consumer_id"]: t["reason"] for t in out.triggers if t["holdout"]}
    assert held == dict.fromkeys(members, "global_control")


def test_the_global_control_group_does_not_depend_on_the_rules():
    assert [in_global_control(f"c{i}", 0.1) for i in range(200)] == [
        in_global_control(f"c{i}", 0.1) for i in range(200)]
    assert not in_global_control("anyone", 0.0)


@pytest.mark.parametrize(("snippet", "where", "message"), [
    ("triggers:\n  - {name: t, kind: winback, on: Page, wait: 1h, offer: x,"
     " attribution_window: soon}\n", "test.yaml:2:", "attribution_window"),
    ("settings:\n  attribution_window: 0d\n", "test.yaml:2:23", "more than zero"),
    ("suppression:\n  global_control: 1.5\n", "test.yaml:2:19", "global_control must be"),
])
def test_bad_attribution_settings_are_refused_at_their_line_and_column(
    snippet: str, where: str, message: str
) -> None:
    with pytest.raises(RulesError) as err:
        loads_rules(snippet, "test.yaml")
    assert str(err.value).startswith(where) and message in str(err.value)


def test_a_state_of_version_4_reads_with_no_open_window_and_is_written_back_as_the_current():
    eng = engine(RULES)
    run(eng, added())
    eng.advance(FIRED)
    fresh = eng.consumer("u")
    assert fresh is not None and len(fresh.windows) == 1
    old = orjson.loads(fresh.to_bytes())
    assert old[0] == STATE_VERSION == 6
    old = [4, *old[1:-2]]  # version 4 had no `windows` (nor version 6's `entered`)
    back = ConsumerState.from_bytes(orjson.dumps(old))
    assert back.windows == [] and back.id == "u"
    assert orjson.loads(back.to_bytes())[0] == STATE_VERSION
