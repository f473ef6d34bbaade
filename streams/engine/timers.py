"""The due-time index: pending timers of all consumers of a partition, ordered by due time.

The consumer's state is the source of truth (`ConsumerState.timers`); the index is a heap
rebuilt from the store at start. Every timer has an entry due at or before it: re-arming to a
later due leaves the entry where it is, and the engine pushes it on to the timer's due when it
pops; disarmed timers leave stale entries that are skipped when popped. Arming is O(log n) at
most and nothing ever scans consumers.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heappop, heappush


class TimerIndex:
    """A min-heap of (due, consumer_id, trigger_name); ties break by id then name."""

    __slots__ = ("heap",)

    def __init__(self) -> None:
        #: the heap itself; the engine peeks at `heap[0][0]` on its hot path
        self.heap: list[tuple[float, str, str]] = []

    def push(self, due: float, consumer_id: str, trigger: str) -> None:
        heappush(self.heap, (due, consumer_id, trigger))

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def pop_due(self, upto: float) -> Iterator[tuple[float, str, str]]:
        """Pop, in order, every entry due at or before `upto` (entries pushed meanwhile too)."""
        heap = self.heap
        while heap and heap[0][0] <= upto:
            yield heappop(heap)

    def __len__(self) -> int:
        return len(self.heap)
