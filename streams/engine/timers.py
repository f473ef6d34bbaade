"""The due-time index: pending trigger timers, segment re-checks and profile_ttl entries of a
partition, by due time.

The consumer's state is the source of truth (`ConsumerState.timers`, `.recheck`, `.ttl_due`);
the index only says when to look. In memory it is a binary heap ordered by (due, consumer,
name) of the entries due within the current five minutes (`BUCKET`), and the later entries in
buckets of five minutes, each moved into the heap when the heap runs empty. A pop then sifts
through the few entries due soon, not through every pending one: popping a heap of 9,000 entries
missed the CPU's caches at most of its 13 levels (on bench/live.py's events, the sifts took 2.4%
of the per-record path's samples; 1.3% with buckets), and a partition of a million consumers
holds a hundred times more. Compiled, the heap is sifted here, comparing machine floats (heapq's
C functions compare through Python calls: at 200k events, ~4.7k instructions per pop of (due,
consumer, name) tuples). Every pending timer or re-check has an entry due at or before it:
moving one later leaves the entry where it is, and the engine pushes it on to the new due when
it pops; entries of disarmed timers are skipped when popped, and identical entries pop together
and count once. Nothing ever scans consumers.

In the store the index is kept exactly, one key per pending timer or re-check, in due order:
`t/<due>/<[consumer, name]>` where <due> is the 16 hex digits of the due's IEEE-754 bits
(sign-flipped, so byte order is numeric order), written by the engine's flush. At start the
index is paged in lazily: the entries up to the cursor are in memory, and the next page is
read when time reaches the cursor, so start-up does not grow with the number of consumers.
"""

from __future__ import annotations

import math
import struct
from heapq import heapify, heappop, heappush
from typing import Final

import orjson
from mypy_extensions import mypyc_attr

from streams.engine.store import Store

#: the name of a consumer's segment re-check in the index (trigger names are never empty)
RECHECK: Final = ""
#: the name of a consumer's profile_ttl entry: due at or before last_seen + profile_ttl, moved
#: on when it pops early (sorts after trigger names: timers due at the erase time fire first)
TTL: Final = "~ttl"
INDEX_PREFIX = "t/"
INDEX_END = "t0"  # the first key after every "t/..." key
#: the prefix of `r/<consumer>`: its re-check's due when moved since its state was written
#: (kept, like the index, by the store that holds it only: see `streams.engine.consumers`)
MOVED_PREFIX = "r/"
MOVED_END = "r0"
PAGE = 4096
#: seconds of due times per bucket of the entries due after the heap's (see the module)
BUCKET: Final = 300.0
#: the bucket of every due from _LAST_DUE on (and of inf and nan: never due), the last one
_LAST_KEY: Final = 1 << 52
_LAST_DUE: Final = _LAST_KEY * BUCKET



_PACK_DOUBLE: Final = struct.Struct(">d").pack
_UNPACK_DOUBLE: Final = struct.Struct(">d").unpack
#: the first hex pair of a non-negative due's key: its first byte with the sign bit set
_FIRST: Final = [f"{i | 0x80:02x}" for i in range(128)]


def _ordered_hex(due: float) -> str:
    raw: bytes = _PACK_DOUBLE(due)
    first = raw[0]
    if first < 0x80:  # not negative (every due in practice): the sign bit set
        return f"{_FIRST[first]}{raw[1:].hex()}"
    return (int.from_bytes(raw, "big") ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


def entry_key(due: float, consumer_id: str, name: str) -> str:
    """The store key of an index entry (lexicographic order = due order); it alone says the
    entry: `decode_entry_key` reads it back."""
    tail = _NAME_TAILS.get(name)
    if tail is None:
        tail = _NAME_TAILS[name] = orjson.dumps([name]).decode()[1:]  # '"name"]'
    if consumer_id.isascii() and consumer_id.isprintable() and _plain(consumer_id):
        # what orjson writes for a string it escapes nothing in (the usual id), without it
        return f'{INDEX_PREFIX}{_ordered_hex(due)}/["{consumer_id}",{tail}'
    return INDEX_PREFIX + _ordered_hex(due) + "/" + orjson.dumps([consumer_id, name]).decode()


#: name -> the end of its entry keys, '"<name JSON-escaped>"]' (names come from the rules)
_NAME_TAILS: dict[str, str] = {}


def _plain(text: str) -> bool:
    """Printable ASCII without the two characters JSON escapes there (quote, backslash)."""
    return '"' not in text and "\\" not in text


#: the value of every index entry: its key says all (entries written before this release hold
#: the JSON [due, consumer, name], which says the same)
ENTRY_VALUE: Final = b"1"

#: whether this module runs compiled (mypyc makes it an extension module): the heap is then
#: sifted here, comparing machine floats; as Python source, heapq's C functions are faster
NATIVE: Final = not __file__.endswith(".py")


@mypyc_attr(acyclic=True)  # (no cycle through it: the garbage collector never looks at one)
class Entry:
    """An index entry: the consumer's timer or re-check `name` is due at or after `due`."""

    __slots__ = ("consumer_id", "due", "name")

    def __init__(self, due: float, consumer_id: str, name: str) -> None:
        self.due = due
        self.consumer_id = consumer_id
        self.name = name

    def before(self, other: Entry) -> bool:
        """Whether this entry pops first: (due, consumer_id, name) is less."""
        if self.due != other.due:
            return self.due < other.due
        if self.consumer_id != other.consumer_id:
            return self.consumer_id < other.consumer_id
        return self.name < other.name

    def __lt__(self, other: Entry) -> bool:
        """before(), for heapq (the heap of the Python source)."""
        return self.before(other)

    def same(self, other: Entry) -> bool:
        return (
            self.due == other.due
            and self.consumer_id == other.consumer_id
            and self.name == other.name
        )

    def __repr__(self) -> str:
        return f"Entry({self.due!r}, {self.consumer_id!r}, {self.name!r})"


def decode_entry_key(key: str) -> tuple[float, str, str]:
    """(due, consumer_id, name) of an index key."""
    bits = int(key[2:18], 16)
    # (non-negative dues have the sign bit set in the key; negative ones have every bit flipped)
    bits = bits ^ 0x8000000000000000 if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
    due: float = _UNPACK_DOUBLE(bits.to_bytes(8, "big"))[0]
    consumer_id, name = orjson.loads(key[19:])
    return due, str(consumer_id), str(name)


class TimerIndex:
    """A min-heap of index entries over a lazily read, due-ordered index in a store; ties
    break by id then name (a re-check, name "", before the consumer's trigger timers).

    `heap` holds the entries due before `_edge`, buckets of `BUCKET` seconds the others (all at
    or after it); the heap is never empty while a bucket is not, so `heap[0]` is the first
    entry of all."""

    __slots__ = ("_after", "_cursor", "_edge", "_keys", "_later", "_store", "heap")

    def __init__(self, store: Store | None = None) -> None:
        #: the heap itself (heapq's layout); the engine peeks at `heap[0].due` on its hot path
        self.heap: list[Entry] = []
        #: bucket number (floor(due / BUCKET)) -> its entries, in no order
        self._later: dict[int, list[Entry]] = {}
        self._keys: list[int] = []  # the bucket numbers of _later, a heap
        self._edge = -math.inf  # heap: the entries due before it; buckets: at or after it
        self._store = store  # None: nothing (more) to read from the store
        self._after = INDEX_PREFIX  # the next page starts at this key
        self._cursor = 0.0  # due of the last entry read: every unread one is due at or after it
        if store is not None:
            self._page()

    def push(self, due: float, consumer_id: str, name: str) -> None:
        item = Entry(due, consumer_id, name)
        if due < self._edge:
            self._sift_in(item)
            return
        self._defer(item)
        if not self.heap:
            self._refill()

    def _sift_in(self, item: Entry) -> None:
        heap = self.heap
        if not NATIVE:
            heappush(heap, item)
            return
        heap.append(item)
        _sift_down(heap, 0, len(heap) - 1, item)

    def _defer(self, item: Entry) -> None:
        """Put an entry due at or after the edge in its bucket."""
        key = _bucket_of(item.due)
        bucket = self._later.get(key)
        if bucket is None:
            bucket = self._later[key] = []
            heappush(self._keys, key)
        bucket.append(item)

    def _refill(self) -> None:
        """Move the first bucket into the heap (empty), the edge to its end."""
        key = heappop(self._keys)
        heap = self.heap
        heap.extend(self._later.pop(key))
        self._edge = math.inf if key >= _LAST_KEY else (key + 1) * BUCKET
        _heapify(heap)

    def pop(self) -> Entry:
        """Take out the first entry (the heap not empty)."""
        heap = self.heap
        if not NATIVE:
            first = heappop(heap)
        else:
            last = heap.pop()
            if heap:
                first = heap[0]
                heap[0] = last
                _sift_up(heap, 0)
            else:
                first = last
        if not heap and self._keys:
            self._refill()
        return first

    def next_due(self) -> float | None:
        # (while entries are unread, the last one read is still in memory, not yet due)
        return self.heap[0].due if self.heap else None

    def entries(self) -> list[tuple[float, str, str]]:
        """Every entry (due, consumer_id, name) in memory, in pop order, identical ones once
        (for tests and inspection; the engine pops)."""
        found = {(e.due, e.consumer_id, e.name) for e in self.heap}
        for bucket in self._later.values():
            found.update((e.due, e.consumer_id, e.name) for e in bucket)
        return sorted(found)

    def read_until(self, upto: float) -> None:
        """Read the entries of the store due at or before `upto` into the heap (a caller then
        pops the heap itself)."""
        while self._store is not None and self._cursor <= upto:
            self._page()

    def _page(self) -> None:
        store = self._store
        assert store is not None
        rows = store.scan(self._after, INDEX_END, PAGE)
        heap = self.heap
        edge = self._edge
        last = self._cursor
        for key, _ in rows:
            due, cid, name = decode_entry_key(key)
            item = Entry(due, cid, name)
            if due < edge:
                heap.append(item)
            else:
                self._defer(item)
            last = due
        if len(rows) < PAGE:
            self._store = None  # all read
        else:
            self._after = rows[-1][0] + "\0"
            self._cursor = last
        _heapify(heap)
        if not heap and self._keys:
            self._refill()

    @property
    def loading(self) -> bool:
        """Whether entries of the store are still unread."""
        return self._store is not None

    def __len__(self) -> int:
        return len(self.heap) + sum(len(b) for b in self._later.values())


def _bucket_of(due: float) -> int:
    if due < _LAST_DUE:
        return math.floor(due / BUCKET) if due > -_LAST_DUE else -_LAST_KEY
    return _LAST_KEY


def _heapify(heap: list[Entry]) -> None:
    if not NATIVE:
        heapify(heap)
        return
    for pos in range(len(heap) // 2 - 1, -1, -1):  # (heapq's heapify)
        _sift_up(heap, pos)


def _sift_up(heap: list[Entry], pos: int) -> None:
    """heapq's _siftup: the entry at `pos` moves down to its place (the smaller child up at each
    level to a leaf, then back up: fewer comparisons than stopping early)."""
    end = len(heap)
    start = pos
    item = heap[pos]
    child = 2 * pos + 1
    while child < end:
        smaller = heap[child]  # (each child read once: compiled, a read is a checked call)
        right = child + 1
        if right < end:
            other = heap[right]
            if not smaller.before(other):
                smaller = other
                child = right
        heap[pos] = smaller
        pos = child
        child = 2 * pos + 1
    _sift_down(heap, start, pos, item)


def _sift_down(heap: list[Entry], start: int, pos: int, item: Entry) -> None:
    """heapq's _siftdown: `item`, bound for `pos`, moves up past the parents it comes before,
    no higher than `start`."""
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if not item.before(parent):
            break
        heap[pos] = parent
        pos = parent_pos
    heap[pos] = item
