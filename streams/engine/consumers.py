"""The consumers of one partition in a store, behind a write-back cache: what the engine reads
and writes besides its rules.

Consumers live in a `Store` (str -> bytes): `c/<id>` their state, `a/<id>` the id an alias was
merged into, `t/...` the due-time index (timers.py), `r/<id>` a re-check moved since the state was
last written, `~pop` the population statistics, `~meta` the watermark. `flush()` writes each key
changed since the last flush once.

A segment re-check that changes no membership moves only the consumer's next re-check. Writing
the whole state for that (and producing it to the live changelog) was a third of all state
writes, so such a move is written as `r/<id>` (the due, as text) with the index entries: like
the index, a key the store keeps locally and never shares (`streams.tables`). Reading the state
applies it. A state restored from elsewhere has no `r/` key and may carry a re-check that already
fired; the index rebuild (`Engine._rebuild_index`) recomputes every re-check due by then.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import orjson

from streams.engine import attribution, jsonbytes
from streams.engine.events import iso
from streams.engine.population import Population
from streams.engine.state import ConsumerState
from streams.engine.store import Store
from streams.engine.timers import ENTRY_VALUE, MOVED_PREFIX, RECHECK, TTL, TimerIndex, entry_key

POPULATION_KEY = "~pop"
META_KEY = "~meta"
#: the store's `t/` due-time index is kept (absent from stores of the previous release)
INDEX_VERSION = 1


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Knobs of the shell, not of the rules: how many consumers to keep decoded in memory."""

    max_cached: int = 200_000


class Consumers:
    """The consumers of one partition: read through a cache, written back by `flush()`, with
    the due-time index of their timers, the population statistics and the watermark."""

    def __init__(
        self,
        store: Store,
        partition: int = 0,
        config: EngineConfig | None = None,
    ) -> None:
        self.store = store
        self.partition = partition
        self.config = config or EngineConfig()
        self._stats: Counter[str] = Counter()
        self._events = 0  # events not yet added to _stats["events"] (see `stats`)
        self._applied = 0  # likewise for _stats["applied"]
        self._cache: dict[str, ConsumerState | None] = {}
        self._dirty: set[str] = set()
        #: consumers created since the last flush with nothing of them stored: dropped before
        #: it (merged away), they need no delete (a tombstone in RocksDB and the changelog)
        self._fresh: set[str] = set()
        #: consumers whose re-check moved, and nothing else since their state was written
        #: (those also in _dirty are written whole)
        self._moved: set[str] = set()
        #: the cached consumers that have an `r/` key in the store
        self._has_moved: set[str] = set()
        self._aliases: dict[str, str | None] = {}
        self._dirty_aliases: set[str] = set()
        #: erasures applied so far (forgotten consumers and aliases): the live shell compacts
        #: their deleted keys out of its disk once the deletes are durable
        self.erasures = 0
        raw_pop = store.get(POPULATION_KEY)
        self.population = Population.from_bytes(raw_pop) if raw_pop else Population()
        raw_meta = store.get(META_KEY)
        meta = orjson.loads(raw_meta) if raw_meta else {}
        self.watermark: float = meta.get("watermark", 0.0)
        #: the latest time every timer and re-check due by was fired (the wall clock's ticks
        #: run ahead of the watermark): a re-check stored as due by then is one that fired
        self.fired_until: float = meta.get("fired", self.watermark)
        self._flushed_watermark = self.watermark
        self._flushed_fired = self.fired_until
        self._iso_last: tuple[float, str] = (math.nan, "")  # see _iso (nan equals no t)
        #: index entries (due, name) in the store of the cached consumers that have some
        self._indexed: dict[str, tuple[tuple[float, str], ...]] = {}
        indexed = meta.get("index") == INDEX_VERSION and store.index_current()
        #: whether flush writes the index to the store (see Store.keeps_index)
        self._keeps_index = bool(store.keeps_index)
        self._meta_dirty = not indexed  # (and without an index, the engine builds one)
        self.timers = TimerIndex(store if indexed else None)

    def _meta(self) -> bytes:
        meta: dict[str, float] = {"watermark": self.watermark}
        if self.fired_until > self.watermark:
            meta["fired"] = self.fired_until
        if self._keeps_index:  # (else an engine opened on it later rebuilds the index)
            meta["index"] = INDEX_VERSION
        return jsonbytes.dumps(meta)

    @property
    def stats(self) -> Counter[str]:
        """Counts of what happened: events, dead_letters, duplicates, entered:<segment>, ..."""
        stats = self._stats
        if self._events:
            stats["events"] += self._events
            self._events = 0
        if self._applied:
            stats["applied"] += self._applied
            self._applied = 0
        return stats

    # state access
    def _get(self, cid: str) -> ConsumerState | None:
        # (get(), not try/except KeyError: a raised exception costs more than the lookup)
        state = self._cache.get(cid)
        if state is not None or cid in self._cache:
            return state
        if len(self._cache) >= self.config.max_cached:
            self.flush()
            self._cache.clear()
            self._indexed.clear()
            self._aliases.clear()
            self._has_moved.clear()
        state = self._read(cid, True)
        if (
            state is not None
            and self._keeps_index
            and (state.timers or state.recheck or state.ttl_due or state.windows)
        ):
            self._indexed[cid] = entries(state)
        self._cache[cid] = state
        return state

    def stored(self, cid: str) -> ConsumerState | None:
        """The consumer's state as stored (its moved re-check applied), bypassing the cache."""
        return self._read(cid, False)

    def _read(self, cid: str, cached: bool) -> ConsumerState | None:
        store = self.store
        raw = store.get("c/" + cid)
        if raw is None:
            return None
        state = ConsumerState.from_bytes(raw)
        moved = store.get(MOVED_PREFIX + cid)
        if moved is not None:
            state.recheck = float(moved)
            if cached:
                self._has_moved.add(cid)
        return state

    def _alias(self, cid: str) -> str | None:
        if cid not in self._aliases:
            raw = self.store.get("a/" + cid)
            self._aliases[cid] = raw.decode() if raw is not None else None
        return self._aliases[cid]

    def _set_alias(self, cid: str, target: str | None) -> None:
        self._aliases[cid] = target
        self._dirty_aliases.add(cid)

    def _create(self, cid: str, t: float) -> ConsumerState:
        """The state of a consumer `_get` found none of, new in the cache."""
        state = ConsumerState(cid, t)
        self._cache[cid] = state
        if cid not in self._dirty:  # (else dropped since the flush: its delete is still due)
            self._fresh.add(cid)
        return state

    def _drop(self, cid: str) -> None:
        self._cache[cid] = None
        self._dirty.add(cid)  # (and its `r/` key, if it has one: see flush)

    def flush(self) -> None:
        """Write every changed key to the store, once each (and the index entries of the
        consumers whose timers or re-check changed)."""
        store = self.store
        dirty = self._dirty
        has_moved = self._has_moved
        for cid in self._moved:
            if cid in dirty:
                continue
            state = self._cache.get(cid)
            if state is not None:
                store.put(MOVED_PREFIX + cid, repr(state.recheck).encode())
                has_moved.add(cid)
                self._index(cid, state)
        self._moved.clear()
        fresh = self._fresh
        for cid in dirty:
            state = self._cache.get(cid)
            if state is None:
                if cid not in fresh:
                    store.delete("c/" + cid)
            else:
                store.put("c/" + cid, state.to_bytes())
            if cid in has_moved:
                has_moved.discard(cid)
                store.delete(MOVED_PREFIX + cid)
            self._index(cid, state)
        dirty.clear()
        fresh.clear()
        for cid in self._dirty_aliases:
            target = self._aliases.get(cid)
            if target is None:
                store.delete("a/" + cid)
            else:
                store.put("a/" + cid, target.encode())
        self._dirty_aliases.clear()
        if self.population.dirty:
            store.put(POPULATION_KEY, self.population.to_bytes())
            self.population.dirty = False
        if (
            self.watermark != self._flushed_watermark
            or self.fired_until != self._flushed_fired
            or self._meta_dirty
        ):
            store.put(META_KEY, self._meta())
            self._flushed_watermark = self.watermark
            self._flushed_fired = self.fired_until
            self._meta_dirty = False

    def _index(self, cid: str, state: ConsumerState | None) -> None:
        """Write the index entries of the consumer that changed since its last flush."""
        if not self._keeps_index:
            return
        new: tuple[tuple[float, str], ...] = (
            entries(state)
            if state is not None
            and (state.timers or state.recheck or state.ttl_due or state.windows)
            else ()
        )
        indexed = self._indexed
        old = indexed.pop(cid, ())
        if new:
            indexed[cid] = new
        if old != new:
            self._write_index(cid, old, new)

    def _write_index(
        self, cid: str, old: tuple[tuple[float, str], ...], new: tuple[tuple[float, str], ...]
    ) -> None:
        store = self.store
        if old:
            keep = set(new)
            for due, name in old:
                if (due, name) not in keep:
                    store.delete(entry_key(due, cid, name))
        for due, name in new:
            if (due, name) not in old:
                store.put(entry_key(due, cid, name), ENTRY_VALUE)

    def consumer(self, cid: str) -> ConsumerState | None:
        """The state of a consumer of this partition (read-only use)."""
        return self._get(cid)

    def _iso(self, t: float) -> str:
        """iso(t), kept for the last t: outputs of one instant often share it."""
        last = self._iso_last
        if last[0] == t:
            return last[1]
        text = iso(t)
        self._iso_last = (t, text)
        return text


def entries(state: ConsumerState) -> tuple[tuple[float, str], ...]:
    """The due-time index entries (due, name) a consumer's state calls for."""
    entries = [(timer.due, name) for name, timer in state.timers.items()]
    if state.recheck:
        entries.append((state.recheck, RECHECK))
    if state.ttl_due:
        entries.append((state.ttl_due, TTL))
    if state.windows:
        entries.append((attribution.close_due(state), attribution.WINDOWS))
    return tuple(entries)
