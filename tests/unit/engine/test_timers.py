"""The in-memory due-time index: due times in a heap, the entries of each due popped together."""

from __future__ import annotations

import random

from streams.engine.store import MemoryStore
from streams.engine.timers import ENTRY_VALUE, TimerIndex, entry_key


def pop_all(index: TimerIndex) -> list[tuple[float, str, str]]:
    out: list[tuple[float, str, str]] = []
    while index.heap:
        due = index.heap[0]
        out.extend((due, cid, name) for cid, name in index.pop())
    return out


def test_entries_pop_in_due_then_consumer_then_name_order_as_a_heap_of_tuples_would():
    rng = random.Random(7)
    pushed = [
        (float(rng.randrange(5)), f"u{rng.randrange(4)}", rng.choice(["", "cart", "~ttl"]))
        for _ in range(200)
    ]
    index = TimerIndex()
    for due, cid, name in pushed:
        index.push(due, cid, name)
    assert len(index) == 200
    assert pop_all(index) == sorted(set(pushed))
    assert len(index) == 0 and index.next_due() is None


def test_identical_entries_of_one_due_pop_once():
    index = TimerIndex()
    for _ in range(3):
        index.push(10.0, "u", "cart")
    index.push(10.0, "a", "cart")
    assert index.next_due() == 10.0 and len(index) == 4
    assert index.entries() == [(10.0, "a", "cart"), (10.0, "u", "cart")]
    assert index.pop() == [("a", "cart"), ("u", "cart")]
    assert len(index) == 0 and index.heap == []


def test_an_entry_alone_at_its_due_pops_alone():
    index = TimerIndex()
    index.push(2.0, "u", "")
    index.push(1.0, "v", "cart")
    assert index.pop() == [("v", "cart")]
    assert index.pop() == [("u", "")]


def test_entries_paged_in_from_the_store_join_those_pushed_at_the_same_due():
    store = MemoryStore()
    for due, cid in ((5.0, "b"), (5.0, "c"), (7.0, "a")):
        store.put(entry_key(due, cid, "cart"), ENTRY_VALUE)
    index = TimerIndex(store)
    index.push(5.0, "a", "cart")
    index.push(5.0, "b", "cart")  # also in the store: once
    assert not index.loading and len(index) == 5
    assert pop_all(index) == [(5.0, "a", "cart"), (5.0, "b", "cart"), (5.0, "c", "cart"),
                              (7.0, "a", "cart")]
