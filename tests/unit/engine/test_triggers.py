"""Trigger semantics: arm, re-arm, disarm, due exactly at t, if/offers, cooldown, cap, consent,
holdout, stable ids."""

from __future__ import annotations

from streams.engine.events import iso
from tests.unit.engine.helpers import DAY, HOUR, MIN, T0, engine, identify, run, track

CART = """
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    unless: [Order Completed]
    offer: free-shipping
"""


def test_fires_when_event_time_passes_due():
    eng = engine(CART)
    out = run(eng, track("u1", "Product Added", T0, product_id="p1"))
    assert out.triggers == []
    out = run(eng, track("u2", "Page", T0 + 29 * MIN))
    assert out.triggers == []
    out = run(eng, track("u2", "Page", T0 + 31 * MIN))
    [trig] = out.triggers
    assert trig["campaign"] == "cart"
    assert trig["kind"] == "retargeting"
    assert trig["consumer_id"] == "u1"
    assert trig["offer"] == "free-shipping"
    assert trig["products"] == ["p1"]
    assert trig["due_at"] == iso(T0 + 30 * MIN)
    assert trig["holdout"] is False


def test_due_exactly_at_event_time_fires_before_the_event_is_applied():
    eng = engine(CART)
    run(eng, track("u1", "Product Added", T0, product_id="p1"))
    # the purchase at exactly the due time comes too late to disarm
    out = run(eng, track("u1", "Order Completed", T0 + 30 * MIN, order_id="o1", revenue=10))
    assert [t["consumer_id"] for t in out.triggers] == ["u1"]


def test_unless_disarms():
    eng = engine(CART)
    run(eng, track("u1", "Product Added", T0, product_id="p1"))
    run(eng, track("u1", "Order Completed", T0 + 10 * MIN, order_id="o1", revenue=10))
    out = run(eng, track("u2", "Page", T0 + 2 * HOUR))
    assert out.triggers == []


def test_rearm_restarts_timer_and_accumulates_products():
    eng = engine(CART)
    run(eng, track("u1", "Product Added", T0, product_id="p1"))
    run(eng, track("u1", "Product Added", T0 + 20 * MIN, product_id="p2"))
    assert run(eng, track("u2", "Page", T0 + 40 * MIN)).triggers == []
    [trig] = run(eng, track("u2", "Page", T0 + 51 * MIN)).triggers
    assert trig["products"] == ["p1", "p2"]
    assert trig["due_at"] == iso(T0 + 50 * MIN)


def test_trigger_id_is_stable_and_depends_on_arming_event():
    def fire(mid: str) -> str:
        eng = engine(CART)
        run(eng, track("u1", "Product Added", T0, mid=mid, product_id="p1"))
        return run(eng, track("u2", "Page", T0 + DAY)).triggers[0]["trigger_id"]

    assert fire("a") == fire("a")
    assert fire("a") != fire("b")


def test_if_and_offer_tiers_are_evaluated_at_fire_time():
    eng = engine(
        """
segments:
  - name: big-spender
    when: revenue >= 1000
triggers:
  - name: winback
    kind: winback
    on: Order Completed
    wait: 60d
    unless: [Order Completed]
    if: orders >= 1
    offers:
      - {if: "in_segment('big-spender')", offer: vip-20}
      - {offer: comeback-10}
settings:
  max_clock_skew: 90d  # time moves by a later event, 60 days on
"""
    )
    run(eng, track("rich", "Order Completed", T0, order_id="o1", revenue=1500))
    run(eng, track("poor", "Order Completed", T0, order_id="o2", revenue=50))
    run(eng, track("poor", "Order Refunded", T0 + DAY, order_id="o2"))  # orders back to 0
    out = run(eng, track("x", "Page", T0 + 61 * DAY))
    assert {t["consumer_id"]: t["offer"] for t in out.triggers} == {"rich": "vip-20"}
    assert out.triggers[0]["segments"] == ["big-spender"]
    assert out.triggers[0]["kind"] == "winback"


CAPPED = """
triggers:
  - name: a
    kind: retargeting
    on: Product Added
    wait: 1h
    offer: x
    cooldown: 1d
  - name: b
    kind: retargeting
    on: Product Viewed
    wait: 1h
    offer: y
suppression:
  frequency_cap: {max: 2, per: 7d}
settings:
  max_clock_skew: 30d  # time moves by later events, days on
"""


def test_cooldown_suppresses_second_trigger_of_same_rule():
    eng = engine(CAPPED)
    out = run(
        eng,
        track("u1", "Product Added", T0),
        track("u1", "Product Added", T0 + 2 * HOUR),
        track("u2", "Page", T0 + 5 * HOUR),
    )
    assert len(out.triggers) == 1
    [sup] = out.suppressed
    assert sup["reason"] == "cooldown"
    assert sup["campaign"] == "a"
    assert sup["due_at"] == iso(T0 + 3 * HOUR)


def test_frequency_cap_across_triggers():
    eng = engine(CAPPED)
    out = run(
        eng,
        track("u1", "Product Added", T0),
        track("u1", "Product Viewed", T0 + 2 * HOUR),
        track("u1", "Product Viewed", T0 + 4 * HOUR),
        track("u2", "Page", T0 + DAY),
    )
    assert [t["campaign"] for t in out.triggers] == ["a", "b"]
    assert [s["reason"] for s in out.suppressed] == ["frequency_cap"]
    # a week later the cap has room again
    run(eng, track("u1", "Product Viewed", T0 + 8 * DAY))
    assert len(run(eng, track("u2", "Page", T0 + 9 * DAY)).triggers) == 1


def test_consent_withdrawn_suppresses_and_given_back_allows():
    eng = engine(CART)
    run(eng, identify("u1", T0, unsubscribed=True))
    run(eng, track("u1", "Product Added", T0 + MIN))
    out = run(eng, track("u2", "Page", T0 + HOUR))
    assert out.triggers == []
    assert [s["reason"] for s in out.suppressed] == ["consent"]
    consent_back = identify("u1", T0 + 2 * HOUR)
    consent_back["context"] = {"consent": {"categoryPreferences": {"marketing": True}}}
    run(eng, consent_back, track("u1", "Product Added", T0 + 2 * HOUR + MIN))
    assert len(run(eng, track("u2", "Page", T0 + 4 * HOUR)).triggers) == 1


def test_consent_suppression_comes_before_cooldown():
    eng = engine(CAPPED)
    run(eng, track("u1", "Product Added", T0))
    run(eng, identify("u1", T0 + 2 * HOUR, unsubscribed=True))
    run(eng, track("u1", "Product Added", T0 + 2 * HOUR + 1))
    out = run(eng, track("u2", "Page", T0 + DAY))
    assert [s["reason"] for s in out.suppressed] == ["consent"]


def test_holdout_share_within_tolerance_and_stable():
    text = CART + "suppression:\n  holdout: 0.2\n"
    eng = engine(text)
    n = 3000
    for i in range(n):
        run(eng, track(f"u{i}", "Product Added", T0 + i * 0.01))
    out = run(eng, track("z", "Page", T0 + DAY))
    assert len(out.triggers) == n
    held = [t for t in out.triggers if t["holdout"]]
    assert 0.17 * n < len(held) < 0.23 * n
    eng2 = engine(text)
    for i in range(n):
        run(eng2, track(f"u{i}", "Product Added", T0 + i * 0.01))
    held2 = [t for t in run(eng2, track("z", "Page", T0 + DAY)).triggers if t["holdout"]]
    assert [t["consumer_id"] for t in held] == [t["consumer_id"] for t in held2]


def test_advance_fires_on_wall_clock_without_events():
    eng = engine(CART)
    run(eng, track("u1", "Product Added", T0))
    assert eng.advance(T0 + 10 * MIN).triggers == []
    assert len(eng.advance(T0 + 30 * MIN).triggers) == 1
    assert eng.advance(T0 + DAY).triggers == []


def test_allowed_lateness_delays_firing():
    eng = engine(CART + "settings:\n  allowed_lateness: 10m\n")
    run(eng, track("u1", "Product Added", T0))
    assert run(eng, track("u2", "Page", T0 + 35 * MIN)).triggers == []
    # a late purchase within the lateness still disarms
    run(eng, track("u1", "Order Completed", T0 + 32 * MIN, order_id="o", revenue=1))
    assert run(eng, track("u2", "Page", T0 + 2 * HOUR)).triggers == []
