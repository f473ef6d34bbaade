"""The due-time index: pending trigger timers, segment re-checks and profile_ttl entries of a
partition, by due time.

The consumer's state is the source of truth (`ConsumerState.timers`, `.recheck`, `.ttl_due`);
the index only says when to look. In memory it is a heap. Every pending timer or re-check has an
entry due at or before it: moving one later leaves the entry where it is, and the engine pushes
it on to the new due when it pops; entries of disarmed timers are skipped when popped, and
identical entries pop together and count once. Nothing ever scans consumers.

In the store the index is kept exactly, one key per pending timer or re-check, in due order:
`t/<due>/<[consumer, name]>` where <due> is the 16 hex digits of the due's IEEE-754 bits
(sign-flipped, so byte order is numeric order), written by the engine's flush. At start the
index is paged in lazily: the entries up to the cursor are in the heap, and the next page is
read when time reaches the cursor, so start-up does not grow with the number of consumers.
"""

from __future__ import annotations

import struct
from heapq import heapify, heappush
from typing import Final

import orjson

from streams.engine.store import Store

#: the name of a consumer's segment re-check in the index (trigger names are never empty)
RECHECK = ""
#: the name of a consumer's profile_ttl entry: due at or before last_seen + profile_ttl, moved
#: on when it pops early (sorts after trigger names: timers due at the erase time fire first)
TTL = "~ttl"
INDEX_PREFIX = "t/"
INDEX_END = "t0"  # the first key after every "t/..." key
PAGE = 4096

Entry = tuple[float, str, str]


_PACK_DOUBLE: Final = struct.Struct(">d").pack
_UNPACK_DOUBLE: Final = struct.Struct(">d").unpack
#: the first hex pair of a non-negative due's key: its first byte with the sign bit set
_FIRST: Final = [f"{i | 0x80:02x}" for i in range(128)]


def _ordered_hex(due: float) -> str:
    raw: bytes = _PACK_DOUBLE(due)
    first = raw[0]
    if first < 0x80:  # not negative (every due in practice): the sign bit set
        return _FIRST[first] + raw[1:].hex()
    return (int.from_bytes(raw, "big") ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


def entry_key(due: float, consumer_id: str, name: str) -> str:
    """The store key of an index entry (lexicographic order = due order); it alone says the
    entry: `decode_entry_key` reads it back."""
    return INDEX_PREFIX + _ordered_hex(due) + "/" + orjson.dumps([consumer_id, name]).decode()


#: the value of every index entry: its key says all (entries written before this release hold
#: the JSON [due, consumer, name], which says the same)
ENTRY_VALUE: Final = b"1"


def decode_entry_key(key: str) -> Entry:
    """(due, consumer_id, name) of an index key."""
    bits = int(key[2:18], 16)
    # (non-negative dues have the sign bit set in the key; negative ones have every bit flipped)
    bits = bits ^ 0x8000000000000000 if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    due: float = _UNPACK_DOUBLE(bits.to_bytes(8, "big"))[0]
    consumer_id, name = orjson.loads(key[19:])
    return due, str(consumer_id), str(name)


class TimerIndex:
    """A min-heap of (due, consumer_id, name) over a lazily read, due-ordered index in a store;
    ties break by id then name (a re-check, name "", before the consumer's trigger timers)."""

    __slots__ = ("_after", "_cursor", "_store", "heap")

    def __init__(self, store: Store | None = None) -> None:
        #: the heap itself; the engine peeks at `heap[0][0]` on its hot path
        self.heap: list[Entry] = []
        self._store = store  # None: nothing (more) to read from the store
        self._after = INDEX_PREFIX  # the next page starts at this key
        self._cursor = 0.0  # due of the last entry read: every unread one is due at or after it
        if store is not None:
            self._page()

    def push(self, due: float, consumer_id: str, name: str) -> None:
        heappush(self.heap, (due, consumer_id, name))

    def next_due(self) -> float | None:
        # (while entries are unread, the last one read is still in the heap, not yet due)
        return self.heap[0][0] if self.heap else None

    def read_until(self, upto: float) -> None:
        """Read the entries of the store due at or before `upto` into the heap (a caller then
        pops the heap itself)."""
        while self._store is not None and self._cursor <= upto:
            self._page()

    def _page(self) -> None:
        store = self._store
        assert store is not None
        rows = store.scan(self._after, INDEX_END, PAGE)
        entries = [decode_entry_key(key) for key, _ in rows]
        if len(rows) < PAGE:
            self._store = None  # all read
        else:
            self._after = rows[-1][0] + "\0"
            self._cursor = entries[-1][0]
        self.heap.extend(entries)
        heapify(self.heap)

    @property
    def loading(self) -> bool:
        """Whether entries of the store are still unread."""
        return self._store is not None

    def __len__(self) -> int:
        return len(self.heap)
