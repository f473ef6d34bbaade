"""A re-check that changes no membership writes its moved due (`r/<id>`), never the state."""

from __future__ import annotations

import orjson

from streams.engine.core import META_KEY, Engine
from streams.engine.store import MemoryStore
from streams.engine.timers import MOVED_PREFIX, decode_entry_key
from tests.unit.engine.helpers import DAY, HOUR, T0, rules, run, track

# days_since_last_seen inside arithmetic: re-checked on the daily cadence, not at a crossing,
# so the re-checks before day 5 change nothing
RULES = """
segments:
  - name: drifting
    when: days_since_last_seen * 1 > 5
"""


class RecordingStore(MemoryStore):
    """A MemoryStore that records the keys written (put or deleted)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def put(self, key: str, value: bytes) -> None:
        self.written.append(key)
        super().put(key, value)

    def delete(self, key: str) -> None:
        self.written.append(key)
        super().delete(key)


def started(store: MemoryStore, *users: str) -> Engine:
    eng = Engine(rules(RULES), store)
    for i, uid in enumerate(users):
        run(eng, track(uid, "Product Viewed", T0 + i * HOUR, product_id="p"))
    eng.flush()
    return eng


def from_changelog(store: MemoryStore) -> MemoryStore:
    """What a partition restored from the changelog holds: the states (with the re-check each
    was written with) and the clock, without the local index and `r/` keys."""
    shared = {k: v for k, v in store.data.items() if not k.startswith(("t/", MOVED_PREFIX))}
    meta = orjson.loads(shared[META_KEY])
    del meta["index"]
    shared[META_KEY] = orjson.dumps(meta)
    restored = MemoryStore()
    restored.data.update(shared)
    return restored


def changes(out: object) -> list[tuple[str, str, str, str]]:
    return [
        (c["consumer_id"], c["segment"], c["change"], c["at"])
        for c in out.segment_changes  # type: ignore[attr-defined]
    ]


def recheck_keys(store: MemoryStore, uid: str) -> list[float]:
    return sorted(
        decode_entry_key(k)[0] for k in store.data
        if k.startswith("t/") and decode_entry_key(k)[1:] == (uid, "")
    )


def test_a_re_check_that_changes_no_membership_writes_its_moved_due_and_not_the_state():
    store = RecordingStore()
    eng = started(store, "u1")
    before = store.data["c/u1"]
    store.written.clear()
    out = eng.advance(T0 + 1.5 * DAY)
    eng.flush()
    assert eng.stats["rechecks"] == 1 and not out.segment_changes
    assert "c/u1" not in store.written
    moved = float(store.data[MOVED_PREFIX + "u1"])
    assert moved > T0 + 1.5 * DAY
    assert store.data["c/u1"] == before
    assert recheck_keys(store, "u1") == [moved]  # the index follows it


def test_a_re_check_that_changes_a_membership_writes_the_state_and_drops_the_moved_due():
    store = RecordingStore()
    eng = started(store, "u1")
    eng.advance(T0 + 2.5 * DAY)
    eng.flush()
    assert MOVED_PREFIX + "u1" in store.data
    out = eng.advance(T0 + 7 * DAY)
    eng.flush()
    assert [c[:3] for c in changes(out)] == [("u1", "drifting", "entered")]
    assert MOVED_PREFIX + "u1" not in store.data
    assert "c/u1" in store.written


def test_an_event_after_a_moved_re_check_writes_the_state_and_drops_the_moved_due():
    store = MemoryStore()
    eng = started(store, "u1")
    eng.advance(T0 + 1.5 * DAY)
    eng.flush()
    run(eng, track("u1", "Product Viewed", T0 + 1.6 * DAY, product_id="p"))
    eng.flush()
    assert MOVED_PREFIX + "u1" not in store.data
    state = orjson.loads(store.data["c/u1"])
    assert recheck_keys(store, "u1") == [state[33]]  # (the state's recheck field)


def test_an_engine_reopened_on_the_store_reads_the_moved_re_check_and_goes_on_as_before():
    uninterrupted = started(MemoryStore(), "u1", "u2")
    store = MemoryStore()
    first = started(store, "u1", "u2")
    first.advance(T0 + 2.5 * DAY)
    first.flush()
    reopened = Engine(rules(RULES), store)
    assert reopened.consumer("u1").recheck == first.consumer("u1").recheck  # type: ignore[union-attr]
    got = reopened.advance(T0 + 9 * DAY)
    uninterrupted.advance(T0 + 2.5 * DAY)
    assert changes(got) == changes(uninterrupted.advance(T0 + 9 * DAY))
    assert len(changes(got)) == 2


def test_a_state_restored_without_its_moved_re_check_is_re_checked_from_the_clock_it_was_left_at():
    store = MemoryStore()
    first = started(store, "u1", "u2")
    first.advance(T0 + 3.5 * DAY)
    first.flush()
    fired = first.stats["rechecks"]
    restored = Engine(rules(RULES), from_changelog(store))
    for uid in ("u1", "u2"):  # rebuilt to the re-check the first engine has pending
        assert restored.consumer(uid).recheck == first.consumer(uid).recheck  # type: ignore[union-attr]
    out = restored.advance(T0 + 9 * DAY)
    assert changes(out) == changes(first.advance(T0 + 9 * DAY))
    assert restored.stats["rechecks"] == first.stats["rechecks"] - fired  # none fired again


def test_a_re_check_the_wall_clock_fired_ahead_of_the_watermark_is_not_fired_again_after_restore():
    store = MemoryStore()
    first = started(store, "u1")
    first.fire(T0 + 2.5 * DAY)  # the wall clock's tick: the watermark stays at the event
    first.flush()
    assert orjson.loads(store.data[META_KEY])["fired"] == T0 + 2.5 * DAY
    restored = Engine(rules(RULES), from_changelog(store))
    assert restored.consumer("u1").recheck == first.consumer("u1").recheck  # type: ignore[union-attr]
    assert restored.next_due() == first.next_due()


def test_forgetting_a_consumer_deletes_its_moved_re_check():
    store = MemoryStore()
    eng = started(store, "u1", "u2")
    eng.advance(T0 + 1.5 * DAY)
    eng.flush()
    assert MOVED_PREFIX + "u1" in store.data
    eng.forget("u1")
    eng.flush()
    assert not [k for k in store.data if "u1" in k]
    assert MOVED_PREFIX + "u2" in store.data


def test_a_consumer_evicted_from_the_cache_comes_back_with_its_moved_re_check():
    store = MemoryStore()
    eng = started(store, "u1")
    eng.advance(T0 + 1.5 * DAY)
    pending = eng.consumer("u1").recheck  # type: ignore[union-attr]
    eng.flush()
    eng._cache.clear()
    eng._indexed.clear()
    assert eng.consumer("u1").recheck == pending  # type: ignore[union-attr]
    out = eng.advance(T0 + 9 * DAY)
    assert [c[:3] for c in changes(out)] == [("u1", "drifting", "entered")]
