"""What `Consumers.flush` writes for consumers that come and go between two flushes."""

from __future__ import annotations

from streams.engine.store import MemoryStore
from streams.runtime import Runtime
from tests.unit.engine.helpers import MIN, T0, anon_track, identify, rules

RULES = rules(
    """
segments:
  - name: browser
    when: views >= 1
"""
)
ANON, USER = "anon-1", "user-1"


class Recording(MemoryStore):
    """A memory store that remembers the keys deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def _runtime() -> tuple[Runtime, Recording]:
    """One partition (merges stay in one engine) over a recording store."""
    store = Recording()
    return Runtime(RULES, 1, store_factory=lambda _p: store), store


def test_a_consumer_created_and_merged_away_before_a_flush_writes_no_delete():
    anon, uid = ANON, USER
    runtime, store = _runtime()
    runtime.process(anon_track(anon, "Product Viewed", T0))
    runtime.process(identify(uid, T0 + MIN, anon=anon))
    runtime.flush()
    assert "c/" + anon not in store.deleted
    assert store.get("c/" + anon) is None
    assert store.get("c/" + uid) is not None
    assert store.get("a/" + anon) == uid.encode()


def test_a_consumer_flushed_then_merged_away_has_its_state_deleted():
    anon, uid = ANON, USER
    runtime, store = _runtime()
    runtime.process(anon_track(anon, "Product Viewed", T0))
    runtime.flush()
    assert store.get("c/" + anon) is not None
    runtime.process(identify(uid, T0 + MIN, anon=anon))
    runtime.flush()
    assert "c/" + anon in store.deleted
    assert store.get("c/" + anon) is None


def test_a_stored_consumer_dropped_and_created_again_before_a_flush_is_still_deleted():
    """Merged away, then a new state under the same id (a forget of the user takes its
    aliases), merged away again: the stored state of the first one must go."""
    anon, uid = ANON, USER
    runtime, store = _runtime()
    runtime.process(anon_track(anon, "Product Viewed", T0))
    runtime.flush()
    runtime.forget(anon)
    runtime.process(anon_track(anon, "Product Viewed", T0 + MIN))
    runtime.process(identify(uid, T0 + 2 * MIN, anon=anon))
    runtime.flush()
    assert store.get("c/" + anon) is None
    assert "c/" + anon in store.deleted
