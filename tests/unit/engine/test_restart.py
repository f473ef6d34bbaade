"""The due-time index in the store: a restart reads it in due order, never every consumer."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from streams.engine import timers
from streams.engine.core import META_KEY, Engine
from streams.engine.events import iso
from streams.engine.store import MemoryStore
from streams.engine.timers import decode_entry_key, entry_key
from tests.unit.engine.helpers import DAY, HOUR, MIN, T0, rules, run, track

RULES = """
segments:
  - name: quiet
    when: days_since_last_seen > 2d
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    unless: [Order Completed]
    offer: free-shipping
"""


class CountingStore(MemoryStore):
    """A MemoryStore that counts reads of consumers and full scans."""

    def __init__(self, data: dict[str, bytes]) -> None:
        super().__init__()
        self.data = dict(data)
        self.consumer_gets = 0
        self.full_scans = 0

    def get(self, key: str) -> bytes | None:
        if key.startswith("c/"):
            self.consumer_gets += 1
        return super().get(key)

    def items(self) -> Iterator[tuple[str, bytes]]:
        self.full_scans += 1
        return super().items()


def fill(n: int, keeps_index: bool = True) -> MemoryStore:
    """n consumers, each with a cart timer and a re-check pending, flushed."""
    store = MemoryStore(keeps_index)
    eng = Engine(rules(RULES), store)
    for i in range(n):
        run(eng, track(f"u{i}", "Product Added", T0 + i, product_id="p", price=5))
    eng.flush()
    return store


def index_keys(store: MemoryStore) -> list[str]:
    return sorted(k for k in store.data if k.startswith("t/"))


def outputs(out: object) -> list[tuple[str, str, str]]:
    trig = [("trigger", t["consumer_id"], t["fired_at"]) for t in out.triggers]  # type: ignore[attr-defined]
    seg = [(c["segment"], c["consumer_id"], c["at"]) for c in out.segment_changes]  # type: ignore[attr-defined]
    return trig + seg


def test_the_index_holds_one_key_per_pending_timer_or_re_check_in_due_order():
    store = fill(3)
    keys = index_keys(store)
    assert len(keys) == 6
    dues = [decode_entry_key(k)[0] for k in keys]
    assert dues == sorted(dues)
    assert dues[:3] == [T0 + 30 * MIN, T0 + 30 * MIN + 1, T0 + 30 * MIN + 2]


def test_firing_or_disarming_a_timer_deletes_its_key_at_flush():
    store = fill(2)
    eng = Engine(rules(RULES), store)
    run(eng, track("u0", "Order Completed", T0 + MIN, order_id="o", revenue=5))  # disarms u0
    eng.advance(T0 + HOUR)  # fires u1's
    eng.flush()
    names = [decode_entry_key(k)[2] for k in index_keys(store)]
    # the two re-checks are left, and the attribution window u1's trigger opened
    assert names == ["", "", "~attr"]


def test_a_restart_decodes_no_consumer_and_fires_as_if_it_had_not_stopped():
    store = fill(50)
    counting = CountingStore(store.data)
    eng = Engine(rules(RULES), counting)
    assert counting.consumer_gets == 0 and counting.full_scans == 0
    assert eng.next_due() == T0 + 30 * MIN
    out = eng.advance(T0 + 30 * MIN + 2.5)
    assert outputs(out) == [("trigger", f"u{i}", iso(T0 + 30 * MIN + i)) for i in range(3)]
    assert counting.consumer_gets == 3

    uninterrupted = Engine(rules(RULES), MemoryStore())
    for i in range(50):
        run(uninterrupted, track(f"u{i}", "Product Added", T0 + i, product_id="p", price=5))
    restarted = Engine(rules(RULES), CountingStore(store.data))
    assert outputs(restarted.advance(T0 + 5 * DAY)) == outputs(uninterrupted.advance(T0 + 5 * DAY))


def test_the_index_is_paged_in_as_time_reaches_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(timers, "PAGE", 4)
    store = fill(30)
    eng = Engine(rules(RULES), CountingStore(store.data))
    assert len(eng.timers) == 4 and eng.timers.loading
    out = eng.advance(T0 + 5 * DAY)
    fired = [t["consumer_id"] for t in out.triggers]
    assert fired == [f"u{i}" for i in range(30)]
    assert len(out.segment_changes) == 30 and not eng.timers.loading


def test_entries_written_after_the_start_and_paged_in_again_count_once(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(timers, "PAGE", 2)
    store = fill(10)
    eng = Engine(rules(RULES), store)
    # re-arm u9 (its due moves later), arm a new u10 (an entry in memory and, once flushed,
    # in the part of the index not read yet): both fire once
    run(eng, track("u9", "Product Added", T0 + 20 * MIN, product_id="q", price=5),
        track("u10", "Product Added", T0 + 20 * MIN, product_id="q", price=5))
    eng.flush()
    out = eng.advance(T0 + 5 * DAY)
    assert sorted(t["consumer_id"] for t in out.triggers) == sorted(f"u{i}" for i in range(11))
    assert [t["fired_at"] for t in out.triggers if t["consumer_id"] in ("u9", "u10")] == [
        iso(T0 + 50 * MIN)] * 2
    assert len(out.segment_changes) == 11


def legacy(store: MemoryStore) -> dict[str, bytes]:
    """The store as the previous release wrote it: no index, no re-check in the states."""
    data = {k: v for k, v in store.data.items() if not k.startswith("t/")}
    for k, v in data.items():
        if k.startswith("c/"):
            data[k] = orjson.dumps(orjson.loads(v)[:33])
    data[META_KEY] = orjson.dumps({"watermark": orjson.loads(data[META_KEY])["watermark"]})
    return data


def test_a_store_of_the_previous_release_is_indexed_once_then_restarts_without_a_scan():
    store = fill(20)
    old = CountingStore(legacy(store))
    eng = Engine(rules(RULES), old)
    assert old.full_scans == 1
    eng.flush()
    assert index_keys(old) == index_keys(store)  # the re-checks are scheduled too
    again = CountingStore(old.data)
    restarted = Engine(rules(RULES), again)
    assert again.full_scans == 0 and again.consumer_gets == 0
    assert outputs(restarted.advance(T0 + 5 * DAY)) == outputs(
        Engine(rules(RULES), CountingStore(store.data)).advance(T0 + 5 * DAY))


@pytest.mark.parametrize("junk", [b"", b"junk", b"{}", b"[1, 2]", b'["x"]'])
def test_a_state_that_does_not_decode_is_counted_and_the_others_are_indexed(junk: bytes):
    store = fill(5)
    data = legacy(store)
    data["c/broken"] = junk
    eng = Engine(rules(RULES), CountingStore(data))
    assert eng.stats["unreadable_states"] == 1
    assert outputs(eng.advance(T0 + 5 * DAY)) == outputs(
        Engine(rules(RULES), CountingStore(store.data)).advance(T0 + 5 * DAY))


def test_a_new_store_is_marked_indexed_at_its_first_flush():
    store = MemoryStore()
    eng = Engine(rules(RULES), store)
    eng.flush()
    assert orjson.loads(store.data[META_KEY])["index"] == 1


@pytest.mark.parametrize(
    "due, consumer, name",
    [
        (T0 + 30 * MIN, "u1", ""),
        (0.5, 'odd "id" \\ with\ttab', "cart-abandonment"),
        (-1.25, "ünïcode-😀", "~ttl"),
        (1e16, "a\u2028b\x7f", "~attr"),
        (2.0, "a\x00b", 'odd "name"'),
        (3.0, "plain-id", 'odd "name"'),
    ],
)
def test_an_index_key_alone_gives_back_its_due_consumer_and_name(due, consumer, name):
    key = entry_key(due, consumer, name)
    assert key == "t/" + timers._ordered_hex(due) + "/" + orjson.dumps([consumer, name]).decode()
    assert decode_entry_key(key) == (due, consumer, name)


def test_index_entries_written_with_the_previous_release_values_still_restart():
    store = fill(5)
    old = {k: v for k, v in store.data.items()}
    for k in index_keys(store):  # the previous release wrote [due, consumer, name] as value
        old[k] = orjson.dumps(list(decode_entry_key(k)))
    restarted = Engine(rules(RULES), CountingStore(old))
    assert outputs(restarted.advance(T0 + 5 * DAY)) == outputs(
        Engine(rules(RULES), CountingStore(store.data)).advance(T0 + 5 * DAY))


def test_a_store_that_keeps_no_index_gets_no_index_key_and_an_engine_opened_on_it_rebuilds_it():
    scratch = fill(20, keeps_index=False)
    assert index_keys(scratch) == []
    assert "index" not in orjson.loads(scratch.data[META_KEY])
    reopened = CountingStore(scratch.data)
    eng = Engine(rules(RULES), reopened)
    assert reopened.full_scans == 1  # (as for a store of the previous release)
    assert outputs(eng.advance(T0 + 5 * DAY)) == outputs(
        Engine(rules(RULES), CountingStore(fill(20).data)).advance(T0 + 5 * DAY))
