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
