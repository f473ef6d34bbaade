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
    runtime, store = _runtime()
    runtime.process(anon_track(ANON, "Product Viewed", T0))
    runtime.process(identify(USER, T0 + MIN, anon=ANON))
    runtime.flush()
    assert "c/" + ANON not in store.deleted
    assert store.get("c/" + ANON) is None
    assert store.get("c/" + USER) is not None
    assert store.get("a/" + ANON) == USER.encode()


def test_a_consumer_flushed_then_merged_away_has_its_state_deleted():
    runtime, store = _runtime()
    runtime.process(anon_track(ANON, "Product Viewed", T0))
    runtime.flush()
    assert store.get("c/" + ANON) is not None
    runtime.process(identify(USER, T0 + MIN, anon=ANON))
    runtime.flush()
    assert "c/" + ANON in store.deleted
    assert store.get("c/" + ANON) is None


def test_a_stored_consumer_dropped_and_created_again_before_a_flush_is_still_deleted():
    """Stored, then forgotten, then created again under the same id and merged away, all
    before one flush: the stored state must still go."""
    runtime, store = _runtime()
    runtime.process(anon_track(ANON, "Product Viewed", T0))
    runtime.flush()
    runtime.forget(ANON)
    runtime.process(anon_track(ANON, "Product Viewed", T0 + MIN))
    runtime.process(identify(USER, T0 + 2 * MIN, anon=ANON))
    runtime.flush()
    assert store.get("c/" + ANON) is None
    assert "c/" + ANON in store.deleted
