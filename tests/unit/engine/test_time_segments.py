"""Segments that time alone moves: exact crossings, cadence re-checks, and what they cost."""

from __future__ import annotations

import math
import zlib
from typing import Any

from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.outputs import Outputs
from streams.engine.state import ConsumerState
from streams.engine.timers import RECHECK
from streams.engine.view import View
from tests.unit.engine.helpers import DAY, HOUR, T0, engine, run, track

MS = 0.001


def changes(out: Outputs) -> list[tuple[str, str, str]]:
    return [(c["segment"], c["change"], c["at"]) for c in out.segment_changes]


def state(eng: Engine, cid: str) -> ConsumerState:
    found = eng.consumer(cid)
    assert found is not None
    return found


def order(uid: str, t: float, n: int = 1) -> dict[str, Any]:
    return track(uid, "Order Completed", t, order_id=f"o{n}-{t}", revenue=50.0)


def one_segment(when: str, settings: str = "") -> str:
    return f"segments:\n  - name: s\n    when: {when}\n{settings}"


def test_strict_greater_enters_one_millisecond_after_the_threshold():
    eng = engine(one_segment("days_since_last_order > 45d"))
    run(eng, order("u", T0))
    assert changes(eng.advance(T0 + 45 * DAY)) == []
    out = eng.advance(T0 + 45 * DAY + MS)
    assert changes(out) == [("s", "entered", iso(T0 + 45 * DAY + MS))]


def test_greater_or_equal_enters_at_the_threshold_itself():
    eng = engine(one_segment("days_since_last_order >= 45d"))
    run(eng, order("u", T0))
    assert changes(eng.advance(T0 + 45 * DAY - MS)) == []
    assert changes(eng.advance(T0 + 45 * DAY)) == [("s", "entered", iso(T0 + 45 * DAY))]


def test_the_change_is_dated_at_the_crossing_not_at_the_next_event():
    # (an event 50 days on moves time here: more than the default max_clock_skew)
    eng = engine(one_segment("days_since_last_order > 45d", "settings:\n  max_clock_skew: 60d\n"))
    run(eng, order("u", T0))
    out = run(eng, track("other", "Page", T0 + 50 * DAY))  # (never ordered: days_since = inf)
    assert [(c["consumer_id"], c["at"]) for c in out.segment_changes] == [
        ("u", iso(T0 + 45 * DAY + MS)), ("other", iso(T0 + 50 * DAY))]


def test_less_than_exits_at_the_threshold_and_an_event_re_enters():
    eng = engine(one_segment("days_since_last_seen < 7d"))
    assert changes(run(eng, track("u", "Page", T0))) == [("s", "entered", iso(T0))]
    assert changes(eng.advance(T0 + 7 * DAY)) == [("s", "exited", iso(T0 + 7 * DAY))]
    assert changes(run(eng, track("u", "Page", T0 + 8 * DAY))) == [
        ("s", "entered", iso(T0 + 8 * DAY))]


def test_a_chain_enters_and_exits_at_both_ends():
    eng = engine(one_segment("30 <= days_since_last_seen < 60"))
    run(eng, track("u", "Page", T0))
    out = eng.advance(T0 + 100 * DAY)
    assert changes(out) == [
        ("s", "entered", iso(T0 + 30 * DAY)),
        ("s", "exited", iso(T0 + 60 * DAY)),
    ]


def test_a_closed_range_changes_at_the_lower_end_and_one_ms_past_the_upper():
    eng = engine(one_segment("30d < days_since_last_seen <= 60d"))
    run(eng, track("u", "Page", T0))
    assert changes(eng.advance(T0 + 100 * DAY)) == [
        ("s", "entered", iso(T0 + 30 * DAY + MS)),
        ("s", "exited", iso(T0 + 60 * DAY + MS)),
    ]


def test_and_waits_for_the_event_driven_operand():
    eng = engine(one_segment("orders >= 2 and days_since_last_order > 10d"))
    run(eng, order("u", T0))
    assert state(eng, "u").recheck == 0.0  # one order: time alone cannot make it true
    assert changes(eng.advance(T0 + 30 * DAY)) == []
    run(eng, order("u", T0 + 31 * DAY, 2))
    assert changes(eng.advance(T0 + 60 * DAY)) == [("s", "entered", iso(T0 + 41 * DAY + MS))]


def test_or_and_not_take_the_earliest_crossing():
    rules = one_segment("not (days_since_last_seen < 5d) or days_since_last_order > 2d")
    eng = engine(rules)
    run(eng, order("u", T0))
    assert state(eng, "u").recheck == T0 + 2 * DAY + MS
    assert changes(eng.advance(T0 + 10 * DAY)) == [("s", "entered", iso(T0 + 2 * DAY + MS))]


def test_or_with_a_true_event_driven_operand_needs_no_re_check():
    eng = engine(one_segment("orders >= 1 or days_since_last_seen > 5d"))
    run(eng, order("u", T0))
    assert state(eng, "u").recheck == 0.0


def test_equality_is_true_for_exactly_one_millisecond():
    eng = engine(one_segment("days_since_last_seen == 1d"))
    run(eng, track("u", "Page", T0))
    assert changes(eng.advance(T0 + 2 * DAY)) == [
        ("s", "entered", iso(T0 + DAY)),
        ("s", "exited", iso(T0 + DAY + MS)),
    ]


def test_an_event_moves_the_crossing_later():
    eng = engine(one_segment("days_since_last_seen > 10d", "settings:\n  max_clock_skew: 30d\n"))
    run(eng, track("u", "Page", T0))
    run(eng, track("u", "Page", T0 + 5 * DAY))
    assert changes(eng.advance(T0 + 12 * DAY)) == []
    assert changes(eng.advance(T0 + 16 * DAY)) == [("s", "entered", iso(T0 + 15 * DAY + MS))]


def test_a_re_check_is_not_an_event():
    eng = engine(one_segment("days_since_last_seen > 1d"))
    run(eng, track("u", "Page", T0))
    eng.advance(T0 + 3 * DAY)
    u = state(eng, "u")
    assert u.events == 1 and u.last_seen == T0
    assert eng.stats["events"] == 1 and eng.stats["rechecks"] == 1


def p_alive_at(eng: Any, t: float) -> float:
    return View(state(eng, "u"), t, eng.population, eng._models, set()).p_alive


def re_checks(cid: str, every: float, after: float, n: int) -> list[float]:
    """The next n cadence re-check instants of a consumer after `after`."""
    every_ms = round(every * 1000)
    phase = zlib.crc32(cid.encode()) % every_ms
    k = (math.floor(after * 1000) - phase) // every_ms + 1
    return [(phase + (k + i) * every_ms) / 1000 for i in range(n)]


P_ALIVE = one_segment("orders >= 2 and p_alive < 0.5", "settings:\n  reevaluate_every: 7d\n")


def test_p_alive_is_re_checked_on_the_cadence_and_dated_at_the_re_check():
    eng = engine(P_ALIVE)
    run(eng, order("u", T0), order("u", T0 + DAY, 2))
    grid = re_checks("u", 7 * DAY, T0 + DAY, 200)
    assert state(eng, "u").recheck == grid[0]
    first_below = next(t for t in grid if p_alive_at(eng, t) < 0.5)
    assert p_alive_at(eng, first_below - 7 * DAY) >= 0.5
    assert changes(eng.advance(grid[-1])) == [("s", "entered", iso(first_below))]


def test_close_re_evaluates_cadence_segments_at_the_close():
    eng = engine(P_ALIVE)
    run(eng, order("u", T0), order("u", T0 + DAY, 2))
    grid = re_checks("u", 7 * DAY, T0 + DAY, 200)
    first_below = next(t for t in grid if p_alive_at(eng, t) < 0.5)
    close = first_below - 1.0
    assert p_alive_at(eng, close) < 0.5  # crossed between two re-checks
    assert changes(eng.close(close)) == [("s", "entered", iso(close))]
    assert changes(eng.close(close + 1)) == []


def test_rfm_segments_are_re_checked_for_buyers_only():
    eng = engine(one_segment("rfm.r >= 4", "settings:\n  reevaluate_every: 12h\n"))
    run(eng, track("browser", "Page", T0), order("buyer", T0))
    assert state(eng, "browser").recheck == 0.0
    due = state(eng, "buyer").recheck
    assert T0 < due <= T0 + 12 * HOUR
    eng.advance(due)
    assert state(eng, "buyer").recheck == due + 12 * HOUR
    assert eng.stats["rechecks"] == 1


def test_in_segment_of_a_time_driven_segment_follows_it():
    rules = """
segments:
  - name: quiet
    when: days_since_last_seen > 3d
  - name: quiet-viewer
    when: in_segment("quiet") and views >= 1
"""
    eng = engine(rules)
    run(eng, track("u", "Product Viewed", T0, category="road", price=10))
    out = eng.advance(T0 + 4 * DAY)
    at = iso(T0 + 3 * DAY + MS)
    assert changes(out) == [("quiet", "entered", at), ("quiet-viewer", "entered", at)]


def test_event_driven_rules_put_nothing_in_the_index():
    eng = engine("""
segments:
  - name: s
    when: orders >= 2 and affinity("road") >= 0.5
""")
    assert eng._plan.timed == ()
    run(eng, *[order(f"u{i}", T0 + i, i) for i in range(50)])
    assert len(eng.timers) == 0 and eng.next_due() is None
    eng.flush()
    assert eng.store.scan("t/", "t0", 1) == []
    assert all(state(eng, f"u{i}").recheck == 0.0 for i in range(50))


def test_next_due_covers_timers_and_re_checks_and_advance_fires_them_in_due_order():
    rules = """
segments:
  - name: quiet
    when: days_since_last_seen > 1d
triggers:
  - name: remind
    kind: retargeting
    on: Product Added
    wait: 2d
    offer: x
"""
    eng = engine(rules)
    run(eng, track("u", "Product Added", T0, product_id="p", price=5))
    assert eng.next_due() == T0 + DAY + MS
    out = eng.advance(T0 + 3 * DAY)
    assert changes(out) == [("quiet", "entered", iso(T0 + DAY + MS))]
    assert [t["fired_at"] for t in out.triggers] == [iso(T0 + 2 * DAY)]
    # what is left: the trigger's attribution window, closing just after fired_at + 7d
    assert eng.next_due() == math.nextafter(T0 + 9 * DAY, math.inf)
    assert eng.watermark == T0 + 3 * DAY


def test_moving_a_re_check_later_leaves_one_heap_entry():
    eng = engine(one_segment("days_since_last_seen > 10d"))
    run(eng, *[track("u", "Page", T0 + i * HOUR) for i in range(20)])
    assert [e for e in eng.timers.entries() if e[2] == RECHECK] == [(T0 + 10 * DAY + MS, "u", "")]


RFM_CHAMPIONS = """
segments:
  - name: champions
    when: rfm.r >= 4 and rfm.f >= 4
  - name: lapsed
    when: days_since_last_order > 10d
"""


def _buyers(eng: Engine) -> None:
    for i in range(10):  # a population to score against: orders on ten different days
        run(eng, *[order(f"b{i}", T0 + i * DAY + k * HOUR, k + 1) for k in range(i % 3 + 1)])


def test_rfm_re_checks_of_one_firing_pass_happen_once_with_the_outputs_of_one_per_day():
    def day_by_day() -> tuple[list[tuple[str, str, str]], int]:
        eng = engine(RFM_CHAMPIONS)
        _buyers(eng)
        before = eng.stats["rechecks"]
        out = Outputs()
        for day in range(10, 61):
            out.extend(eng.fire(T0 + day * DAY))
        return changes(out), eng.stats["rechecks"] - before

    eng = engine(RFM_CHAMPIONS)
    _buyers(eng)
    before = eng.stats["rechecks"]
    out = eng.fire(T0 + 60 * DAY)  # a wall clock two months past the events, in one pass
    expected, daily = day_by_day()
    assert changes(out) == expected and any(c[1] == "entered" for c in expected)
    # each buyer: one re-check for the pass, one at its crossing of 10 days since its last order
    assert eng.stats["rechecks"] - before <= 2 * 10 < 10 * 40 < daily
    b0 = state(eng, "b0")
    assert T0 + 60 * DAY < b0.recheck <= T0 + 61 * DAY  # the first cadence instant after it


def test_with_profile_ttl_every_rfm_re_check_runs_as_an_erasure_may_change_the_population():
    ttl = RFM_CHAMPIONS + "settings:\n  profile_ttl: 400d\n"
    eng = engine(ttl)
    _buyers(eng)
    before = eng.stats["rechecks"]
    eng.fire(T0 + 60 * DAY)
    assert eng.stats["rechecks"] - before > 10 * 40
