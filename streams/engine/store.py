"""The state store interface the engine writes through, and its in-memory implementation.

Keys are strings, values bytes: the live shell puts a Faust table on RocksDB behind the same
interface, so every test of the engine also exercises the serialized form.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Protocol


class Store(Protocol):
    """A key-value store of one partition's state."""

    #: whether the engine keeps its due-time index in this store (timers.py): a store that
    #: outlives the engine does, so a restart reads no consumer; a replay's scratch store
    #: (never restarted from) does not, and spares the writes
    keeps_index: bool

    def index_current(self) -> bool:
        """Whether the index entries in the store match its consumers' states (False when the
        states were restored from elsewhere without them: the engine then rebuilds them)."""
        ...

    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def items(self) -> Iterator[tuple[str, bytes]]: ...
    def scan(self, start: str, stop: str, limit: int) -> list[tuple[str, bytes]]:
        """The first `limit` items with start <= key < stop, in key order (the order of the
        keys' UTF-8 bytes, which is Python's order of str)."""
        ...


class MemoryStore:
    """A dict-backed Store for tests and replay."""

    def __init__(self, keeps_index: bool = True) -> None:
        self.data: dict[str, bytes] = {}
        self.keeps_index = keeps_index

    def index_current(self) -> bool:
        return True

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        # (kept for the whole replay: the engine's values come at their length, see jsonbytes)
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.data.items()))

    def scan(self, start: str, stop: str, limit: int) -> list[tuple[str, bytes]]:
        data = self.data
        keys = heapq.nsmallest(limit, (k for k in data if start <= k < stop))
        return [(k, data[k]) for k in keys]

    def __len__(self) -> int:
        return len(self.data)
