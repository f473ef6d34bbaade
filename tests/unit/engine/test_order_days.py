"""The customer-model features count a consumer's orders of one UTC day as one transaction."""

from __future__ import annotations

import orjson
import pytest

from streams.engine.bgnbd import CDNOW, WEEK, expected_purchases, p_alive
from streams.engine.clv import CustomerModels
from streams.engine.gammagamma import CDNOW_SPEND, expected_spend
from streams.engine.state import FIELDS, MAX_RECENT_ORDERS, ConsumerState
from streams.engine.view import View
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, HOUR, T0, anon_track, engine, identify, rules, run, track

# events months apart move time here: more than the default max_clock_skew
NO_RULES = "segments: []\nsettings:\n  max_clock_skew: 400d\n"


def view_of(eng, cid, now, models=None):
    state = eng.consumer(cid)
    return View(state, now, eng.population, models or CustomerModels(), set(state.segments))


def state_of(eng) -> ConsumerState:
    state = eng.consumer("u")
    assert state is not None
    return state


def order(uid, t, oid, revenue=10.0):
    return track(uid, "Order Completed", t, order_id=oid, revenue=revenue)


def test_four_orders_on_the_first_day_leave_the_consumer_alive():
    eng = engine(NO_RULES)
    run(eng, *[order("u", T0 + i * HOUR, f"o{i}") for i in range(4)])
    v = view_of(eng, "u", T0 + 5 * HOUR)
    assert v.orders == 4
    assert v.p_alive == 1.0  # no repeat day yet (per order it was 0.002)
    assert v.expected_orders_90d == pytest.approx(expected_purchases(90 / 7, 0, 0, 5 / 168, CDNOW))


def test_repeat_days_times_and_age_are_measured_in_whole_days_from_the_first_order_day():
    eng = engine(NO_RULES)
    run(
        eng,
        order("u", T0 + 10 * HOUR, "a", 20.0),
        order("u", T0 + 11 * HOUR, "b", 30.0),  # same day: the first transaction is 50
        order("u", T0 + 7 * DAY + 3 * HOUR, "c", 40.0),
        order("u", T0 + 14 * DAY + 1 * HOUR, "d", 60.0),
        order("u", T0 + 14 * DAY + 9 * HOUR, "e", 20.0),
    )
    now = T0 + 30 * DAY + 6 * HOUR
    v = view_of(eng, "u", now)
    x, t_x, T = 2, 14 * DAY / WEEK, (now - T0) / WEEK
    assert v.p_alive == p_alive(x, t_x, T, CDNOW)
    assert v.expected_orders_90d == expected_purchases(90 / 7, x, t_x, T, CDNOW)
    # Gamma-Gamma reads the mean of the repeat days: (40 + 80) / 2
    assert v.expected_spend == expected_spend(2, 60.0, CDNOW_SPEND)
    assert v.clv_365d == pytest.approx(
        expected_purchases(365 / 7, x, t_x, T, CDNOW) * expected_spend(2, 60.0, CDNOW_SPEND)
    )


def test_refunds_move_the_day_count_and_the_first_and_last_orders_with_them():
    eng = engine(NO_RULES)
    run(
        eng,
        order("u", T0, "a", 20.0),
        order("u", T0 + 3 * DAY, "b", 30.0),
        order("u", T0 + 6 * DAY, "c", 40.0),
        track("u", "Order Refunded", T0 + 7 * DAY, order_id="c"),
        track("u", "Order Cancelled", T0 + 7 * DAY, order_id="a"),
    )
    s = state_of(eng)
    assert (s.first_order, s.last_order) == (T0 + 3 * DAY, T0 + 3 * DAY)
    assert s.order_days == [1.0, 30.0]
    assert view_of(eng, "u", T0 + 8 * DAY).p_alive == 1.0
    run(eng, track("u", "Order Refunded", T0 + 8 * DAY, order_id="b"))
    s = state_of(eng)
    assert (s.orders, s.first_order, s.last_order, s.order_days) == (0, None, None, [0.0, 0.0])


def test_a_refund_of_one_of_two_orders_of_a_day_keeps_the_day():
    eng = engine(NO_RULES)
    run(
        eng,
        order("u", T0, "a"),
        order("u", T0 + 2 * DAY, "b"),
        order("u", T0 + 2 * DAY + HOUR, "c"),
        track("u", "Order Refunded", T0 + 3 * DAY, order_id="c"),
    )
    s = state_of(eng)
    assert s.order_days[0] == 2.0 and s.last_order == T0 + 2 * DAY


def test_beyond_the_recent_orders_the_counts_still_follow_new_days():
    eng = engine(NO_RULES)
    n = MAX_RECENT_ORDERS + 5
    run(eng, *[order("u", T0 + i * DAY, f"o{i}") for i in range(n)])
    run(eng, order("u", T0 + (n - 1) * DAY + HOUR, "same-day"))
    run(eng, track("u", "Order Refunded", T0 + n * DAY, order_id="o3"))  # too old: kept
    s = state_of(eng)
    assert s.order_days[0] == n and s.orders == n + 1


def test_merging_profiles_counts_a_day_both_ordered_on_once():
    router = Runtime(rules(NO_RULES), 1)
    for ev in (
        order("u", T0, "a", 10.0),
        order("u", T0 + 5 * DAY, "b", 20.0),
        anon_track("anon", "Order Completed", T0 + 5 * DAY + HOUR, order_id="c", revenue=5.0),
        anon_track("anon", "Order Completed", T0 + 9 * DAY, order_id="d", revenue=7.0),
        identify("u", T0 + 10 * DAY, anon="anon"),
    ):
        router.process(ev)
    s = state_of(router.engines[0])
    assert s.orders == 4 and s.order_days == [3.0, 10.0]


def test_state_written_before_the_day_counts_reads_one_day_per_order():
    s = ConsumerState("u", T0)
    s.orders, s.revenue = 3, 90.0
    cut = 1 + [f.name for f in FIELDS].index("order_days")
    old = orjson.dumps(orjson.loads(s.to_bytes())[:cut])  # the positional form before the field
    back = ConsumerState.from_bytes(old)
    assert back.order_days == [3.0, 30.0]
    assert ConsumerState.from_bytes(s.to_bytes()).order_days == [0.0, 0.0]
