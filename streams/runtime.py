"""The partition runtime: the engines of the partitions one process holds, the forwards between
them, the input offsets applied, and the stream clock. Replay and the live worker both run it.

A consumer lives on the partition Kafka's default partitioner gives its key; each partition has
its own engine (store, timers, population statistics); the RFM scores of all are against the
sum of their populations (`self.population`: the whole population in replay). A forward to a
partition held here is delivered at once, as an object, before the next input; one to a
partition held elsewhere is left in the outputs for the shell to send (bytes only there:
`encode_forward`).

The stream clock is one for all partitions held here: before an input event at time t is
applied, every partition is advanced to `min(t, bound) - allowed_lateness` (timers of all
partitions fire, partitions in ascending order, each in due order), so a sparse partition's
timers fire when the stream passes them, not at its own next event. `bound` is the live
shell's: the position of an input partition that still has a backlog (its records could disarm
a timer). The clock costs one comparison per event until it reaches the smallest due time of
all partitions. A partition added behind the clock with timers pending (live: taken over with
a backlog, after the clock moved on) is not jumped to the clock: each of its events advances it
to that event's time first, and the clock takes it along once it passes them.
"""

from __future__ import annotations

import gc
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
from orjson import loads

from streams.contract import DEFAULT_PARTITIONS
from streams.engine.core import Engine, EngineConfig
from streams.engine.events import EventError, consumer_key, parse_event
from streams.engine.outputs import EventForward, Forward, Outputs
from streams.engine.partitioning import partition_for
from streams.engine.population import Population
from streams.engine.rules import RuleSet
from streams.engine.snapshot import snapshot
from streams.engine.state import ConsumerState
from streams.engine.store import MemoryStore, Store

_INF = math.inf


class Runtime:
    """The engines of the partitions held here (all of `range(partitions)` unless `held`)."""

    def __init__(
        self,
        rules: RuleSet,
        partitions: int = DEFAULT_PARTITIONS,
        store_factory: Callable[[int], Store] | None = None,
        config: EngineConfig | None = None,
        held: Iterable[int] | None = None,
    ) -> None:
        self.partitions = partitions
        self.rules = rules
        self.config = config
        self.engines: dict[int, Engine] = {}
        #: the populations of the partitions held here, summed: what RFM scores are against
        self.population = Population()
        #: partition -> input topic -> highest offset applied (live; replay reads no offsets)
        self._offsets: dict[int, dict[str, int]] = {}
        self._partition_cache: dict[str, int] = {}
        self._lateness = rules.settings.allowed_lateness
        self._skew = rules.settings.max_clock_skew
        #: the stream clock: every partition's watermark is at least this
        self.clock = -_INF
        #: the live shell's cap on the clock (a backlogged input's position); inf in replay
        self.bound = _INF
        self._next_due = _INF  # the smallest next_due() of all engines, or less
        #: input records read on a partition other than their key's
        self.rerouted = 0
        #: the wall clock of the last tick (live with the wall clock on; -inf otherwise): an event
        #: within max_clock_skew of it is never too far ahead, however quiet the stream was
        self.wall = -_INF
        self._ordered: list[Engine] = []  # the engines in ascending partition order
        factory = store_factory or (lambda _p: MemoryStore(keeps_index=False))
        for p in range(partitions) if held is None else held:
            self.add(p, Engine(rules, factory(p), p, config))

    # ------------------------------------------------------------------ partitions
    def add(self, partition: int, engine: Engine, offsets: dict[str, int] | None = None) -> None:
        """Hold `partition` with `engine`, whose state reflects input up to `offsets`."""
        self.engines[partition] = engine
        self._ordered = [self.engines[q] for q in sorted(self.engines)]
        self.population.join(engine.population)
        self._offsets[partition] = dict(offsets or {})
        if engine.watermark > self.clock:
            self.clock = engine.watermark
        self._note_due(engine)

    def drop(self, partition: int) -> Engine | None:
        """Stop holding `partition` (its engine, which the caller may flush)."""
        self._offsets.pop(partition, None)
        engine = self.engines.pop(partition, None)
        self._ordered = [self.engines[q] for q in sorted(self.engines)]
        if engine is not None:
            self.population.leave(engine.population)
        return engine

    def holds(self, partition: int) -> bool:
        return partition in self.engines

    def partition_of(self, key: str | None) -> int:
        if not key:
            return 0
        # (get(), not try/except KeyError: a raised exception costs more than the lookup)
        p = self._partition_cache.get(key)
        if p is None:
            if len(self._partition_cache) > 1_000_000:
                self._partition_cache.clear()
            p = self._partition_cache[key] = partition_for(key, self.partitions)
        return p

    def set_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        self._lateness = rules.settings.allowed_lateness
        self._skew = rules.settings.max_clock_skew
        for engine in self.engines.values():
            engine.set_rules(rules)

    # ------------------------------------------------------------------ input offsets
    def applies(self, topic: str, partition: int, offset: int) -> bool:
        """Record that input `topic`/`partition` is applied up to `offset`; False when it was
        already (a record redelivered after a crash: the state has it)."""
        offsets = self._offsets.get(partition)
        if offsets is None:
            return False
        if offset <= offsets.get(topic, -1):
            return False
        offsets[topic] = offset
        return True

    def applied(self, topic: str, partition: int) -> int:
        """The highest offset of `topic`/`partition` applied (-1: none, or not held)."""
        offsets = self._offsets.get(partition)
        return -1 if offsets is None else offsets.get(topic, -1)

    def offsets(self, partition: int) -> dict[str, int]:
        """Input topic -> highest offset applied on `partition` (a copy)."""
        return dict(self._offsets.get(partition, {}))

    # ------------------------------------------------------------------ input
    def process(
        self,
        raw: bytes | dict[str, Any],
        source: str = "",
        offset: str | None = None,
        found: int = -1,
    ) -> Outputs:
        """Apply one raw input event on its key's partition, after moving the stream clock to
        its time; settle the forwards to partitions held here. `found` is the partition the
        record was read on (live): a record found on another partition than its key's goes
        to the right one (an event forward when another process holds it)."""
        if isinstance(raw, dict):
            obj: Any = raw
        else:
            try:
                obj = loads(raw)  # (a module attribute costs a lookup per event)
            except orjson.JSONDecodeError:
                obj = None
        if not isinstance(obj, dict):  # the engine's dead letter says what is wrong
            return self._engine_for(found, 0).process(raw, source, offset)
        try:
            ev = parse_event(obj)
        except EventError:
            p = self.partition_of(consumer_key(obj))
            return self._engine_for(found, p).process(obj, source, offset)
        key = ev.consumer_id  # (consumer_key(obj) of a valid event)
        p = self.partition_of(key)
        t = ev.timestamp
        if t > self.bound:
            t = self.bound
        wm = t - self._lateness
        if wm > self.clock and (
            wm - self.clock <= self._skew
            or self.clock <= 0.0
            or wm - self.wall <= self._skew
        ):
            self.clock = wm
            out = self._advance_all(wm) if wm >= self._next_due else Outputs()
        else:  # (beyond max_clock_skew: the engine refuses the event, the clock stays)
            out = Outputs()
            if wm > self.clock:
                wm = -_INF  # (and moves no partition)
        engine = self.engines.get(p)
        if found >= 0 and p != found:
            self.rerouted += 1
            if engine is None:
                out.forwards.append(EventForward(key, obj, (source, offset)))
                return out
        if engine is None:
            raise KeyError(f"partition {p} is not held here")
        if engine.watermark < self.clock:
            if engine.due() > self.clock:
                engine.watermark = self.clock  # nothing is due before the clock: nothing fires
            elif engine.watermark < wm:
                # a partition that joined behind the clock with timers pending (taken over with
                # a backlog): it catches up at its own events' times, so a timer its backlog
                # could still disarm never fires early, and one due before an event fires first
                engine.fire_into(wm, out, True)
        out = engine.apply_event(ev, obj, out, source, offset)
        nd = engine.due()
        if nd < self._next_due:
            self._next_due = nd
        if out.forwards:
            self._settle(out)
        return out

    def _engine_for(self, found: int, p: int) -> Engine:
        """The engine that dead-letters a record without a (valid) key: where it was found."""
        engine = self.engines.get(found if found >= 0 else p)
        if engine is None:
            raise KeyError(f"partition {found if found >= 0 else p} is not held here")
        if engine.watermark < self.clock:
            engine.watermark = self.clock  # (its dead letter's `at`)
        return engine

    def receive(self, fwd: Forward) -> Outputs:
        """Deliver one forward (read from the forwards topic) and settle what follows."""
        engine = self.engines.get(self.partition_of(fwd.key))
        out = Outputs()
        if engine is None:
            out.forwards.append(fwd)  # not ours (any more): its partition's owner gets it
            return out
        if engine.watermark < self.clock:
            engine.watermark = self.clock
        out = engine.receive(fwd)
        self._note_due(engine)
        if out.forwards:
            self._settle(out)
        return out

    def _settle(self, out: Outputs) -> None:
        """Deliver the forwards of `out` to the engines held here, the forwards they lead to
        too; those for partitions held elsewhere stay in `out.forwards`."""
        queue = deque(out.forwards)
        out.forwards = []
        while queue:
            fwd = queue.popleft()
            engine = self.engines.get(self.partition_of(fwd.key))
            if engine is None:
                out.forwards.append(fwd)
                continue
            if engine.watermark < self.clock:
                engine.watermark = self.clock
            more = engine.receive(fwd)
            self._note_due(engine)
            queue.extend(more.forwards)
            more.forwards = []
            out.extend(more)

    # ------------------------------------------------------------------ time
    def _note_due(self, engine: Engine) -> None:
        nd = engine.due()
        if nd < self._next_due:
            self._next_due = nd

    def _advance_all(self, t: float) -> Outputs:
        """Every partition to `t`, in ascending order (each fires in due order)."""
        return self._fire_all(t, True)

    def _fire_all(self, t: float, move: bool) -> Outputs:
        """Fire what is due by `t` on every partition, in ascending order; `move`: the
        watermarks move to `t` too (event time), else they stay (the wall clock)."""
        out = Outputs()
        next_due = _INF
        for engine in self._ordered:
            # (an engine with nothing due only moves its watermark: no call, no Outputs)
            nd = engine.due()
            if nd <= t and nd < _INF:
                engine.fire_into(t, out, move)
                nd = engine.due()
            elif move and t > engine.watermark:
                engine.watermark = t
            if nd < next_due:
                next_due = nd
        self._next_due = next_due
        if out.forwards:
            self._settle(out)
        return out

    def advance(self, t: float) -> Outputs:
        """Move the stream clock to `t` (if later) and every partition with it: what is due
        fires (`--close-at`, the live clock of a caught-up worker)."""
        if t > self.clock:
            self.clock = t
        return self._advance_all(t)

    def close(self, at: float) -> Outputs:
        """The end of a replay (`--close-at`): every partition advanced to `at`, then every
        consumer's time-driven segments re-evaluated at `at` (or at the stream clock, when `at`
        is before it: time never goes back)."""
        if at < self.clock:
            at = self.clock
        out = self.advance(at)
        for p in sorted(self.engines):
            out.extend(self.engines[p].close(at))
        if out.forwards:
            self._settle(out)
        return out

    def tick(self, now: float) -> Outputs:
        """Fire what the wall clock `now` makes due on every partition (live, `tick`); the
        stream clock and the watermarks stay in event time."""
        if now > self.wall:
            self.wall = now
        return self._fire_all(now, False)

    def forget(self, consumer_id: str) -> Outputs:
        """Erase a consumer held here (aliases on other partitions get forwards)."""
        engine = self.engines[self.partition_of(consumer_id)]
        out = engine.forget(consumer_id)
        self._settle(out)
        return out

    # ------------------------------------------------------------------ state
    def flush(self) -> None:
        for engine in self.engines.values():
            engine.flush()

    def stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for engine in self.engines.values():
            total.update(engine.stats)
        if self.rerouted:
            total["rerouted"] += self.rerouted
        return total

    def pending_timers(self) -> int:
        """Timers armed and not yet fired or disarmed (after a flush)."""
        n = 0
        for engine in self.engines.values():
            engine.flush()
            for key, value in engine.store.items():
                if key.startswith("c/"):
                    n += len(ConsumerState.from_bytes(value).timers)
        return n

    # ------------------------------------------------------------------ profiles (read-only)
    def now(self) -> float:
        """The instant features are read at: the stream clock (0 before any event)."""
        return self.clock if self.clock > 0.0 else 0.0

    def peek(self, consumer_id: str) -> ConsumerState | None:
        """The newest state of a consumer held here, without touching the engine's cache
        (None: unknown, or not held here)."""
        engine = self.engines.get(self.partition_of(consumer_id))
        if engine is None:
            return None
        cached = engine._cache  # the write-back cache holds the newest state, if any
        if consumer_id in cached:
            return cached[consumer_id]
        return engine.stored(consumer_id)

    def profile(self, consumer_id: str) -> dict[str, Any] | None:
        """A consumer held here as the rules see it now (`streams.engine.snapshot`)."""
        state = self.peek(consumer_id)
        if state is None:
            return None
        return self.snapshot(state)

    def snapshot(self, state: ConsumerState) -> dict[str, Any]:
        kinds = {t.name: t.kind for t in self.rules.triggers}
        return snapshot(state, self.now(), self.population, self.rules.settings.models, kinds)

    def profiles(self) -> Iterator[dict[str, Any]]:
        """Every consumer held here as the rules see it now, by partition, then id (an order
        that does not depend on the order the consumers were written in)."""
        self.flush()
        for p in sorted(self.engines):
            engine = self.engines[p]
            for key, _ in sorted(engine.store.items()):
                if key.startswith("c/"):
                    state = engine.stored(key[2:])
                    if state is not None:
                        yield self.snapshot(state)

    def consumers(self) -> int:
        self.flush()
        return sum(
            1 for e in self.engines.values() for k, _ in e.store.items() if k.startswith("c/")
        )


#: Young-generation threshold: the engine allocates many small, long-lived objects (consumer
#: states, timers), so the default (700) runs the cyclic collector every few events.
GC_THRESHOLD = (50_000, 20, 20)


def tune_gc() -> None:
    """Collect young garbage less often, and move what start-up allocated (modules, rules,
    Faust's objects) out of the collector's sight for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
