"""One engine per partition, and the routing of events and forwards between them, in process.

This is how replay runs the engine exactly as the live workers do: a consumer lands on the
partition Kafka's default partitioner gives its key, each partition has its own engine (own
watermark, timers and population statistics), and Forward messages are delivered to the engine
owning their key before the next input event.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import orjson
from orjson import loads

from streams.contract import DEFAULT_PARTITIONS
from streams.engine.core import Engine, EngineConfig
from streams.engine.events import consumer_key
from streams.engine.outputs import Outputs
from streams.engine.partitioning import partition_for
from streams.engine.rules import RuleSet
from streams.engine.state import ConsumerState
from streams.engine.store import MemoryStore, Store


class Router:
    """Engines for partitions 0..n-1 and an in-process forward queue."""

    def __init__(
        self,
        rules: RuleSet,
        partitions: int = DEFAULT_PARTITIONS,
        store_factory: Callable[[int], Store] | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        factory = store_factory or (lambda _p: MemoryStore())
        self.partitions = partitions
        self._partition_cache: dict[str, int] = {}
        self.engines = [Engine(rules, factory(p), p, config) for p in range(partitions)]

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

    def process(
        self, raw: bytes | dict[str, Any], source: str = "", offset: str | None = None
    ) -> Outputs:
        """Route one raw input event to its partition's engine and settle all forwards."""
        if isinstance(raw, dict):
            obj: Any = raw
        else:
            try:
                obj = loads(raw)  # (a module attribute costs a lookup per event)
            except orjson.JSONDecodeError:
                obj = None
        key = consumer_key(obj) if isinstance(obj, dict) else None
        engine = self.engines[self.partition_of(key)]
        # anything but an object goes in raw: the engine's dead letter says what is wrong
        out = engine.process(obj if isinstance(obj, dict) else raw, source, offset)
        if out.forwards:
            self._settle(out)
        return out

    def _settle(self, out: Outputs) -> None:
        queue = deque(out.forwards)
        out.forwards = []
        while queue:
            fwd = queue.popleft()
            more = self.engines[self.partition_of(fwd.key)].receive(fwd.payload)
            queue.extend(more.forwards)
            more.forwards = []
            out.extend(more)

    def advance(self, now: float) -> Outputs:
        """Advance every partition's time to `now` (fires what is due)."""
        out = Outputs()
        for engine in self.engines:
            out.extend(engine.advance(now))
        self._settle(out)
        return out

    def close(self, at: float) -> Outputs:
        """The end of a replay: every partition advanced to `at`, then every consumer's
        time-driven segments re-evaluated at `at`."""
        out = Outputs()
        for engine in self.engines:
            out.extend(engine.close(at))
        self._settle(out)
        return out

    def forget(self, consumer_id: str) -> Outputs:
        out = self.engines[self.partition_of(consumer_id)].forget(consumer_id)
        self._settle(out)
        return out

    def flush(self) -> None:
        for engine in self.engines:
            engine.flush()

    def stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for engine in self.engines:
            total.update(engine.stats)
        return total

    def pending_timers(self) -> int:
        """Timers armed and not yet fired or disarmed (after a flush)."""
        n = 0
        for engine in self.engines:
            engine.flush()
            for key, value in engine.store.items():
                if key.startswith("c/"):
                    n += len(ConsumerState.from_bytes(value).timers)
        return n

    def consumers(self) -> int:
        self.flush()
        return sum(
            1 for e in self.engines for k, _ in e.store.items() if k.startswith("c/")
        )
