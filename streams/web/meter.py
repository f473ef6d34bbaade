"""What a worker counts for its metrics and profile look-ups, in plain ints and dicts.

The per-record path (`streams.flow`) calls `Meter.observe` once per output record (most events
have none) and nothing per event; everything else (input rates, lag, timers, state size) is
read when Prometheus scrapes (`streams.web.metrics`). Segment sizes start from one scan of a
partition's stored consumers when the worker takes the partition, then follow its
`segment-changes` outputs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from streams.contract import decode_value
from streams.engine.state import ConsumerState
from streams.engine.store import Store
from streams.engine.timers import INDEX_END, INDEX_PREFIX, RECHECK, TTL
from streams.engine.topics import DEAD_LETTERS, PROFILES, SEGMENT_CHANGES, SUPPRESSED

#: upper bounds (s) of the event-to-output latency histogram's buckets (+Inf is implied)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)
#: output records kept for profile look-ups (all consumers of the worker together)
RECENT_OUTPUTS = 10_000
#: output records a profile shows at most
RECENT_PER_CONSUMER = 20
#: index entries counted at most per scrape (the pending-timers gauge of a huge store)
MAX_INDEX_SCAN = 2_000_000


class Latency:
    """A histogram of seconds in fixed buckets (counts per bucket, not cumulative)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        # the first bucket whose bound is >= seconds: bisect_left, written out (compiled, it
        # costs a fraction of a call to `bisect` per output record)
        bounds = self.bounds
        lo = 0
        hi = len(bounds)
        while lo < hi:
            mid = (lo + hi) // 2
            if bounds[mid] < seconds:
                lo = mid + 1
            else:
                hi = mid
        self.counts[lo] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, cumulative count) per bucket, +Inf last (Prometheus' form)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Meter:
    """Counts by label of the outputs one worker produced, segment sizes of the partitions it
    holds, rebalances and commits, and a ring of recent outputs."""

    def __init__(
        self,
        partition_of: Callable[[str], int],
        recent: int = RECENT_OUTPUTS,
        clock: Callable[[], float] = time.time,
        exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.partition_of = partition_of
        self.clock = clock
        #: whether a consumer is held (an erasure's empty profile then purges the ring of it)
        self.exists = exists
        #: (campaign, offer, kind, holdout "true"/"false") -> triggers
        self.triggers: dict[tuple[str, str, str, str], int] = {}
        #: (campaign, reason) -> suppressed triggers
        self.suppressions: dict[tuple[str, str], int] = {}
        #: reason -> dead letters
        self.dead_letters: dict[str, int] = {}
        #: (segment, "entered"/"exited") -> changes
        self.segment_changes: dict[tuple[str, str], int] = {}
        #: partition -> segment -> members (partitions held only)
        self.members: dict[int, dict[str, int]] = {}
        self.latency = Latency()
        self.rebalances = 0
        #: profile snapshots published on the `profiles` topic
        self.profile_snapshots = 0
        #: (input topic, partition) -> the offset applied when the worker took the partition
        self.started: dict[tuple[str, int], int] = {}
        #: (key, base topic, record), newest last
        self.recent: deque[tuple[str, str, dict[str, Any] | bytes]] = deque(maxlen=recent)

    # ------------------------------------------------------------------ the per-output hook
    def observe(
        self, base: str, key: Any, record: dict[str, Any], event_ts: float,
        value: bytes | None = None,
    ) -> None:
        """One output record queued (`streams.flow.Flow.observe`); `value`: its bytes on the
        topic, which the ring keeps instead of the record (bytes are no work for the garbage
        collector, 10,000 records kept alive are)."""
        if event_ts > 0.0:
            self.latency.observe(max(0.0, self.clock() - event_ts))
        if base == SEGMENT_CHANGES:
            seg, change = record["segment"], record["change"]
            k = (seg, change)
            self.segment_changes[k] = self.segment_changes.get(k, 0) + 1
            sizes = self.members.get(self.partition_of(record["consumer_id"]))
            if sizes is not None:
                sizes[seg] = sizes.get(seg, 0) + (1 if change == "entered" else -1)
        elif base.startswith("triggers."):
            t = (
                str(record.get("campaign")),
                str(record.get("offer")),
                str(record.get("kind")),
                "true" if record.get("holdout") else "false",
            )
            self.triggers[t] = self.triggers.get(t, 0) + 1
        elif base == SUPPRESSED:
            s = (str(record.get("campaign")), str(record.get("reason")))
            self.suppressions[s] = self.suppressions.get(s, 0) + 1
        elif base == DEAD_LETTERS:
            reason = str(record.get("reason"))
            self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
            return  # (keyed by source, not by consumer)
        elif (
            base == PROFILES
            and record.get("email") is None
            and not record.get("consented")
            and self.exists is not None
            and not self.exists(str(key))
        ):
            self.forget(str(key))  # an erasure (forget, profile_ttl): keep nothing of it
            return
        self.recent.append((str(key), base, record if value is None else value))

    def forget(self, consumer_id: str) -> None:
        """Drop a consumer's records from the ring of recent outputs."""
        kept = [entry for entry in self.recent if entry[0] != consumer_id]
        self.recent.clear()
        self.recent.extend(kept)

    # ------------------------------------------------------------------ partitions
    def hold(self, partition: int, store: Store) -> None:
        """Count the segment members of a partition taken over (its stored consumers)."""
        self.members[partition] = count_members(store)

    def release(self, partition: int) -> None:
        self.members.pop(partition, None)

    def segment_sizes(self) -> dict[str, int]:
        """Segment -> members over the partitions held."""
        total: dict[str, int] = {}
        for sizes in self.members.values():
            for seg, n in sizes.items():
                total[seg] = total.get(seg, 0) + n
        return total

    # ------------------------------------------------------------------ look-ups
    def recent_of(self, consumer_id: str, limit: int = RECENT_PER_CONSUMER) -> list[dict[str, Any]]:
        """The consumer's latest output records still in the ring, oldest first, each with
        its `topic` (base name)."""
        found: list[dict[str, Any]] = []
        for key, base, kept in reversed(self.recent):
            if key == consumer_id:
                found.append({"topic": base, "record": _record(base, kept)})
                if len(found) >= limit:
                    break
        found.reverse()
        return found

    def entered_at(self, consumer_id: str) -> dict[str, str]:
        """Segment -> `at` of the consumer's latest entry still in the ring."""
        since: dict[str, str] = {}
        for key, base, kept in self.recent:
            if key == consumer_id and base == SEGMENT_CHANGES:
                record = _record(base, kept)
                if record["change"] == "entered":
                    since[record["segment"]] = record["at"]
                else:
                    since.pop(record["segment"], None)
        return since


def count_members(store: Store) -> dict[str, int]:
    """Segment -> consumers of `store` in it (decodes every stored consumer once)."""
    sizes: dict[str, int] = {}
    for key, value in store.items():
        if key.startswith("c/"):
            for seg in ConsumerState.from_bytes(value).segments:
                sizes[seg] = sizes.get(seg, 0) + 1
    return sizes


def index_keys(store: Any) -> Iterator[str]:
    """The keys of a store's due-time index (RocksDB: keys only, no staged writes)."""
    db = getattr(store, "db", None)
    if db is None:
        for key, _ in store.scan(INDEX_PREFIX, INDEX_END, MAX_INDEX_SCAN):
            yield key
        return
    it = db.iter()
    it.seek(INDEX_PREFIX.encode())
    end = INDEX_END.encode()
    n = 0
    while it.valid() and n < MAX_INDEX_SCAN:
        k = bytes(it.key())
        if k >= end:
            break
        yield k.decode()
        it.next()
        n += 1


_RECHECK_END = f',"{RECHECK}"]'
_TTL_END = f',"{TTL}"]'


def pending_timers(store: Any) -> dict[str, int]:
    """Entries of the store's due-time index by kind: trigger timers, segment re-checks,
    profile_ttl checks (as of the last commit)."""
    counts = {"trigger": 0, "recheck": 0, "profile_ttl": 0}
    for key in index_keys(store):
        if key.endswith(_RECHECK_END):
            counts["recheck"] += 1
        elif key.endswith(_TTL_END):
            counts["profile_ttl"] += 1
        else:
            counts["trigger"] += 1
    return counts


def _record(base: str, kept: dict[str, Any] | bytes) -> dict[str, Any]:
    """A record of the ring as its dict (kept as its bytes on the topic, or as is)."""
    if isinstance(kept, bytes):
        return decode_value(base, kept)
    return kept
