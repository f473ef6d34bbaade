"""An unexpected exception in the middle of applying an event: the event is a dead letter and its
consumer's state is exactly as before it (not as of the last flush), compiled or not."""

from __future__ import annotations

from collections import Counter
from typing import Any

from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.state import ConsumerState
from streams.runtime import Runtime
from tests.unit.engine.helpers import HOUR, MIN, T0, engine, rules, run, track

RULES = """
segments:
  - name: browser
    when: views >= 2
  - name: buyer
    when: orders >= 1
triggers:
  - name: browse-reminder
    kind: retargeting
    on: Product Viewed
    wait: 2h
    unless: [Order Completed]
    offer: reminder
"""


class Boom(Exception):
    pass


class FailingStats(Counter[str]):
    """Engine stats that raise when `key` is counted: a failure after the event changed the
    consumer's state (the segment counters come last), that the compiled engine meets too."""

    def __init__(self, stats: Counter[str], key: str) -> None:
        super().__init__(stats)
        self.key = key
        self.armed = True

    def __setitem__(self, key: str, value: int) -> None:
        if self.armed and key == self.key:
            raise Boom(f"cannot count {key}")
        super().__setitem__(key, value)


def fail_on(eng: Engine, key: str) -> FailingStats:
    stats = FailingStats(eng.stats, key)
    eng._stats = stats
    return stats


def view(uid: str, t: float, mid: str | None = None) -> dict[str, Any]:
    return track(uid, "Product Viewed", t, mid, product_id="p1", price=120.0, category="road")


def order(uid: str, t: float, mid: str | None = None) -> dict[str, Any]:
    return track(uid, "Order Completed", t, mid, order_id=f"o-{t}", revenue=80.0,
                 products=[{"product_id": "p1", "price": 80.0, "category": "road"}])


def snapshot(eng: Engine, cid: str) -> bytes | None:
    state = eng.consumer(cid)
    return None if state is None else state.to_bytes()


def test_a_failure_mid_apply_leaves_the_consumer_exactly_as_before_the_event():
    eng = engine(RULES)
    run(eng, view("u", T0), order("u", T0 + MIN))  # not flushed: only the cache holds them
    before = snapshot(eng, "u")
    population = eng.population.to_bytes()
    stats = fail_on(eng, "entered:browser")
    failing = view("u", T0 + 2 * MIN, "m-fail")
    out = eng.process(failing, "f.jsonl", "3")
    assert [(d["reason"], d["message"], d["offset"]) for d in out.dead_letters] == [
        ("internal_error", "Boom: cannot count entered:browser", "3")]
    assert not out.segment_changes and not out.profiles and not out.forwards
    assert snapshot(eng, "u") == before  # views, price, affinity, timers, seen ids, segments
    assert eng.population.to_bytes() == population
    stats.armed = False
    out = eng.process(failing)  # the same event again: applied, not a duplicate
    assert [(c["segment"], c["change"]) for c in out.segment_changes] == [("browser", "entered")]
    assert eng.stats["duplicates"] == 0 and eng.stats["dead_letter:internal_error"] == 1


def test_a_failed_order_gives_its_population_contribution_back():
    eng = engine(RULES)
    run(eng, view("u", T0), view("other", T0), order("other", T0 + MIN))
    before, population = snapshot(eng, "u"), eng.population.to_bytes()
    fail_on(eng, "entered:buyer")
    out = eng.process(order("u", T0 + 2 * MIN))
    assert [d["reason"] for d in out.dead_letters] == ["internal_error"]
    assert snapshot(eng, "u") == before
    assert eng.population.to_bytes() == population


def test_a_new_consumer_whose_first_event_fails_does_not_exist():
    eng = engine(RULES)
    run(eng, view("other", T0))
    population = eng.population.to_bytes()
    fail_on(eng, "entered:buyer")
    out = eng.process(order("new", T0 + MIN))
    assert [d["reason"] for d in out.dead_letters] == ["internal_error"]
    assert eng.consumer("new") is None
    assert eng.population.to_bytes() == population
    eng.flush()
    assert eng.store.get("c/new") is None


def test_later_events_and_timers_of_a_restored_consumer_run_as_if_the_failed_event_never_came():
    def outputs(fail: bool) -> list[tuple[str, str, str]]:
        eng = engine(RULES)
        run(eng, view("u", T0))
        if fail:
            stats = fail_on(eng, "entered:browser")
            assert eng.process(view("u", T0 + MIN)).dead_letters
            stats.armed = False
        out = run(eng, view("u", T0 + 2 * MIN))
        out.extend(eng.advance(T0 + 5 * HOUR))
        return ([(c["segment"], c["change"], c["at"]) for c in out.segment_changes]
                + [(t["campaign"], t["offer"], t["fired_at"]) for t in out.triggers])

    # the failed view neither counted (browser needs 2 views) nor re-armed the reminder
    assert outputs(fail=True) == [
        ("browser", "entered", iso(T0 + 2 * MIN)),
        ("browse-reminder", "reminder", iso(T0 + 2 * MIN + 2 * HOUR)),
    ]


def test_the_runtime_of_replay_and_the_worker_restores_the_consumer_too():
    runtime = Runtime(rules(RULES), 4)
    runtime.process(view("u", T0))
    eng = runtime.engines[runtime.partition_of("u")]
    state = eng.consumer("u")
    assert isinstance(state, ConsumerState)
    before = state.to_bytes()
    fail_on(eng, "entered:browser")
    out = runtime.process(view("u", T0 + MIN), "events", "7", runtime.partition_of("u"))
    assert [d["reason"] for d in out.dead_letters] == ["internal_error"]
    assert snapshot(eng, "u") == before
