"""The in-memory due-time index: a heap of entries in (due, consumer, name) order."""

from __future__ import annotations

import math
import random

import pytest

from streams.engine import timers
from streams.engine.store import MemoryStore
from streams.engine.timers import ENTRY_VALUE, TimerIndex, entry_key


@pytest.fixture(autouse=True, params=[True, False], ids=["own sift", "heapq"])
def native(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of keeping the heap (compiled, the module's own sift is inlined whatever this
    sets)."""
    monkeypatch.setattr(timers, "NATIVE", request.param)


def pop_all(index: TimerIndex) -> list[tuple[float, str, str]]:
    out: list[tuple[float, str, str]] = []
    while index.heap:
        e = index.pop()
        out.append((e.due, e.consumer_id, e.name))
    return out


def test_entries_pop_in_due_then_consumer_then_name_order_as_a_heap_of_tuples_would():
    rng = random.Random(7)
    pushed = [
        (float(rng.randrange(50)) / 4, f"u{rng.randrange(6)}", rng.choice(["", "cart", "~ttl"]))
        for _ in range(500)
    ]
    index = TimerIndex()
    for due, cid, name in pushed:
        index.push(due, cid, name)
    assert len(index) == 500 and index.next_due() == min(p[0] for p in pushed)
    assert pop_all(index) == sorted(pushed)  # (identical ones too: the engine skips repeats)
    assert len(index) == 0 and index.next_due() is None


def test_pushes_between_pops_keep_the_order():
    rng = random.Random(3)
    index = TimerIndex()
    expected: list[tuple[float, str, str]] = []
    popped: list[tuple[float, str, str]] = []
    for _ in range(300):
        due, cid = float(rng.randrange(100)), f"u{rng.randrange(3)}"
        index.push(due, cid, "cart")
        expected.append((due, cid, "cart"))
        if rng.random() < 0.4:
            e = index.pop()
            popped.append((e.due, e.consumer_id, e.name))
            expected.remove(min(expected))
            assert popped[-1] <= min(expected, default=(math.inf, "", ""))
    assert sorted(expected) == pop_all(index)


def test_entries_lists_each_entry_once_in_pop_order():
    index = TimerIndex()
    for _ in range(3):
        index.push(10.0, "u", "cart")
    index.push(10.0, "a", "cart")
    index.push(2.0, "u", "")
    assert index.entries() == [(2.0, "u", ""), (10.0, "a", "cart"), (10.0, "u", "cart")]
    assert len(index) == 5


def test_entries_paged_in_from_the_store_join_those_pushed_before():
    store = MemoryStore()
    for due, cid in ((5.0, "b"), (5.0, "c"), (7.0, "a")):
        store.put(entry_key(due, cid, "cart"), ENTRY_VALUE)
    index = TimerIndex(store)
    index.push(5.0, "a", "cart")
    index.push(5.0, "b", "cart")  # also in the store: the engine counts it once
    assert not index.loading and len(index) == 5
    assert pop_all(index) == [(5.0, "a", "cart"), (5.0, "b", "cart"), (5.0, "b", "cart"),
                              (5.0, "c", "cart"), (7.0, "a", "cart")]


HOUR = timers.BUCKET


def test_entries_hours_and_days_apart_pop_in_order_across_the_buckets():
    rng = random.Random(11)
    pushed = [
        (rng.uniform(0.0, 40 * 24 * HOUR), f"u{rng.randrange(50)}", rng.choice(["", "cart"]))
        for _ in range(2000)
    ] + [(3 * HOUR, "edge", ""), (3 * HOUR - 0.001, "edge", ""), (-HOUR / 2, "past", "")]
    index = TimerIndex()
    for due, cid, name in pushed:
        index.push(due, cid, name)
    assert len(index) == len(pushed) and index.next_due() == min(p[0] for p in pushed)
    assert pop_all(index) == sorted(pushed)
    assert len(index) == 0


def test_a_far_entry_pushed_into_an_empty_index_is_the_first_at_once():
    index = TimerIndex()
    index.push(60 * 24 * HOUR, "u", "winback")
    assert index.heap and index.next_due() == 60 * 24 * HOUR
    index.push(30 * 24 * HOUR, "u", "")  # (a bucket before the one taken into the heap)
    assert index.next_due() == 30 * 24 * HOUR
    assert [e[0] for e in pop_all(index)] == [30 * 24 * HOUR, 60 * 24 * HOUR]


def test_pushes_between_pops_keep_the_order_across_the_buckets():
    # the clock moves on as the engine's does: what is pushed is due after what popped last
    rng = random.Random(5)
    index = TimerIndex()
    expected: list[tuple[float, str, str]] = []
    now = 0.0
    for _ in range(3000):
        due = now + rng.choice([0.0, 30 * 60.0, 2 * HOUR, 24 * HOUR, 60 * 24 * HOUR])
        cid = f"u{rng.randrange(20)}"
        index.push(due, cid, "t")
        expected.append((due, cid, "t"))
        while index.heap and rng.random() < 0.5:
            e = index.pop()
            assert (e.due, e.consumer_id, e.name) == min(expected)
            expected.remove(min(expected))
            now = e.due
    assert pop_all(index) == sorted(expected)


def test_entries_never_due_pop_last_and_entries_lists_the_buckets_too():
    index = TimerIndex()
    for due in (math.inf, 1e300, 5 * HOUR, HOUR, math.inf):
        index.push(due, "u", "cart")
    assert index.entries() == [(HOUR, "u", "cart"), (5 * HOUR, "u", "cart"),
                               (1e300, "u", "cart"), (math.inf, "u", "cart")]
    assert len(index) == 5
    assert [e[0] for e in pop_all(index)] == [HOUR, 5 * HOUR, 1e300, math.inf, math.inf]


def test_pages_of_the_store_spanning_days_join_the_buckets_in_order():
    store = MemoryStore()
    rng = random.Random(2)
    stored = sorted(
        (rng.uniform(0.0, 20 * 24 * HOUR), f"c{i}", "cart") for i in range(2 * timers.PAGE + 7)
    )
    for due, cid, name in stored:
        store.put(entry_key(due, cid, name), ENTRY_VALUE)
    index = TimerIndex(store)
    assert index.loading and index.next_due() == stored[0][0]
    # pushed before the pages they fall among are read (into buckets those pages join)
    pushed = [(h * HOUR + 1.0, f"x{h}", "cart") for h in range(20 * 24)]  # (one an hour)
    for due, cid, name in pushed:
        index.push(due, cid, name)
    got: list[tuple[float, str, str]] = []
    while index.heap or index.loading:
        index.read_until(index.next_due() or math.inf)
        e = index.pop()
        got.append((e.due, e.consumer_id, e.name))
    assert got == sorted(stored + pushed)
