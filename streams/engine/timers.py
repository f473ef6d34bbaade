"""The due-time index: pending trigger timers, segment re-checks and profile_ttl entries of a
partition, by due time.

The consumer's state is the source of truth (`ConsumerState.timers`, `.recheck`, `.ttl_due`);
the index only says when to look. In memory it is a heap of the distinct due times, each with
its entries (consumer, name): a heap of floats compares far cheaper than one of tuples. Every
pending timer or re-check has an entry due at or before it: moving one later leaves the entry
where it is, and the engine pushes it on to the new due when it pops; entries of disarmed timers
are skipped when popped, and identical entries pop together and count once. Nothing ever scans
consumers.

In the store the index is kept exactly, one key per pending timer or re-check, in due order:
`t/<due>/<[consumer, name]>` where <due> is the 16 hex digits of the due's IEEE-754 bits
(sign-flipped, so byte order is numeric order), written by the engine's flush. At start the
index is paged in lazily: the entries up to the cursor are in the heap, and the next page is
read when time reaches the cursor, so start-up does not grow with the number of consumers.
"""

from __future__ import annotations

import struct
from heapq import heapify, heappop, heappush
from typing import Any, Final

import orjson

from streams.engine.store import Store

#: the name of a consumer's segment re-check in the index (trigger names are never empty)
RECHECK: Final = ""
#: the name of a consumer's profile_ttl entry: due at or before last_seen + profile_ttl, moved
#: on when it pops early (sorts after trigger names: timers due at the erase time fire first)
TTL: Final = "~ttl"
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
    """The due times of the pending entries in a min-heap (`heap`), with the entries
    (consumer_id, name) of each; `pop()` gives those of the earliest due in the order
    (consumer_id, name) (a re-check, name "", before the consumer's trigger timers), each once,
    as a heap of (due, consumer_id, name) would pop them."""

    __slots__ = ("_after", "_at", "_count", "_cursor", "_store", "heap")

    def __init__(self, store: Store | None = None) -> None:
        #: the distinct due times, a min-heap; the engine peeks at `heap[0]` on its hot path
        self.heap: list[float] = []
        #: due -> its entry (consumer_id, name), or a list of them when there are several
        self._at: dict[float, Any] = {}
        self._count = 0  # entries pushed and not yet popped
        self._store = store  # None: nothing (more) to read from the store
        self._after = INDEX_PREFIX  # the next page starts at this key
        self._cursor = 0.0  # due of the last entry read: every unread one is due at or after it
        if store is not None:
            self._page()

    def push(self, due: float, consumer_id: str, name: str) -> None:
        self._count += 1
        at = self._at
        entries = at.get(due)
        if entries is None:
            at[due] = (consumer_id, name)
            heappush(self.heap, due)
        elif type(entries) is tuple:
            at[due] = [entries, (consumer_id, name)]
        else:
            entries.append((consumer_id, name))

    def pop(self) -> list[tuple[str, str]]:
        """Take out the earliest due (`heap[0]`, the heap not empty) with its entries: sorted,
        identical ones once."""
        due = heappop(self.heap)
        at = self._at
        entries = at[due]
        del at[due]  # (not at.pop(due): compiled, a method call)
        if type(entries) is tuple:
            self._count -= 1
            return [entries]
        self._count -= len(entries)
        return sorted(set(entries))

    def next_due(self) -> float | None:
        # (while entries are unread, the last one read is still in the heap, not yet due)
        return self.heap[0] if self.heap else None

    def entries(self) -> list[Entry]:
        """Every entry (due, consumer_id, name) in memory, in pop order, identical ones once
        (for tests and inspection; the engine pops)."""
        out: list[Entry] = []
        for due in sorted(self._at):
            entries = self._at[due]
            for cid, name in [entries] if type(entries) is tuple else sorted(set(entries)):
                out.append((due, cid, name))
        return out

    def read_until(self, upto: float) -> None:
        """Read the entries of the store due at or before `upto` into the heap (a caller then
        pops the heap itself)."""
        while self._store is not None and self._cursor <= upto:
            self._page()

    def _page(self) -> None:
        store = self._store
        assert store is not None
        rows = store.scan(self._after, INDEX_END, PAGE)
        if len(rows) < PAGE:
            self._store = None  # all read
        else:
            self._after = rows[-1][0] + "\0"
        heap = self.heap
        at = self._at
        due = 0.0
        for key, _ in rows:
            due, cid, name = decode_entry_key(key)
            self._count += 1
            entries = at.get(due)
            if entries is None:
                at[due] = (cid, name)
                heap.append(due)
            elif type(entries) is tuple:
                at[due] = [entries, (cid, name)]
            else:
                entries.append((cid, name))
        if self._store is not None:
            self._cursor = due
        heapify(heap)

    @property
    def loading(self) -> bool:
        """Whether entries of the store are still unread."""
        return self._store is not None

    def __len__(self) -> int:
        return self._count
