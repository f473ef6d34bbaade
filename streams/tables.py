"""The engine's `Store` over one partition of the Faust table (RocksDB via rocksdict).

Faust keeps one RocksDB database per table partition and replays the table's changelog into it
on assignment. We use Faust for that (topic, assignment, recovery) but write ourselves: the
engine's `put`/`delete` are staged in memory, and the checkpoint (`streams.checkpoint`) makes
them durable in this order: changelog records produced and acknowledged, then one atomic RocksDB
WriteBatch holding the state, the input offsets already applied, and Faust's persisted changelog
offset.

The due-time index (`t/` keys, `streams.engine.timers`) is derived from the consumers' states:
it is written to RocksDB with them but never to the changelog (it was two thirds of the
changelog's records). So are the `r/` keys, re-checks moved since a state was written
(`streams.engine.consumers`). The batch that writes it also records the changelog offset it matches
(`INDEX_AT_KEY`); a database restored or caught up from the changelog since (Faust's recovery,
`apply_changelog`) no longer matches it, so `index_current()` is False and the engine opened on
it rebuilds the index from the states, once.

Erasure: a delete only hides a key in RocksDB; its older values stay in SST files and the
write-ahead log until compaction, and SST boundary keys in the MANIFEST. After a batch holding an
erasure is written, `compact_erased` rewrites just the files that hold those keys.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from streams.engine import jsonbytes
from streams.engine.timers import INDEX_END, INDEX_PREFIX, MOVED_PREFIX

#: Faust's own key for the last changelog offset applied to a partition database.
FAUST_OFFSET_KEY = b"__faust\0offset__"
#: Our key: the input offsets (per topic) whose events are reflected in this partition's state.
OFFSETS_KEY = b"\x00mm/offsets"
#: Our key: the number of erasure compactions of this partition database (each one's last write).
ERASED_KEY = b"\x00mm/erased"
#: Our key: the changelog offset (Faust's persisted value) that the local due-time index matches.
INDEX_AT_KEY = b"\x00mm/index-at"
_INTERNAL = (FAUST_OFFSET_KEY, OFFSETS_KEY, ERASED_KEY, INDEX_AT_KEY)
#: the prefixes of the keys kept in RocksDB only, never in the changelog (the due-time index and
#: the moved re-checks)
LOCAL_PREFIXES = (INDEX_PREFIX.encode(), MOVED_PREFIX.encode())
#: key prefixes of a consumer's records (state, alias, moved re-check) compacted one key at a
#: time on erasure
_ERASED_PREFIXES = (b"c/", b"a/", MOVED_PREFIX.encode())
#: the due-time index (`streams.engine.timers`): a consumer's past entries are keyed by due, not
#: by id, so erasure compacts the whole index range (one small key per pending timer)
_INDEX_RANGE = (INDEX_PREFIX.encode(), INDEX_END.encode())


def shared(writes: dict[bytes, bytes | None]) -> Iterator[tuple[bytes, bytes | None]]:
    """The writes that go to the changelog: all but the local ones (`LOCAL_PREFIXES`)."""
    for key, value in writes.items():
        if not key.startswith(LOCAL_PREFIXES):
            yield key, value


def erasable(options: Any) -> None:
    """Make Faust's RocksDB options (`faust.stores.rocksdb.RocksDBOptions`) roll the MANIFEST at
    every version edit, so that it never names files bounded by keys erased since (each roll
    writes the list of live files once: small next to a flush or compaction)."""
    base = options.as_options

    def as_options() -> Any:
        opts = base()
        opts.set_max_manifest_file_size(1)
        return opts

    options.as_options = as_options


class TableStore:
    """`streams.engine.store.Store` over one partition database, with staged writes."""

    keeps_index = True

    def __init__(self, db: Any, partition: int) -> None:
        self.db = db
        self.partition = partition
        self.pending: dict[bytes, bytes | None] = {}
        #: drained writes not yet in RocksDB, oldest first (their batch is being acknowledged)
        self.unwritten: deque[dict[bytes, bytes | None]] = deque()
        raw = db.get(OFFSETS_KEY)
        #: topic -> highest offset whose event is in the state, as stored (the runtime tracks
        #: what is applied since; `stage_offsets` stages it with the state).
        self.offsets: dict[str, int] = orjson.loads(raw) if raw else {}

    def get(self, key: str) -> bytes | None:
        """The latest value: staged, else drained but not yet written, else in RocksDB."""
        k = key.encode()
        if k in self.pending:
            return self.pending[k]
        for writes in reversed(self.unwritten):
            if k in writes:
                return writes[k]
        value = self.db.get(k)
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes) -> None:
        self.pending[key.encode()] = value

    def delete(self, key: str) -> None:
        self.pending[key.encode()] = None

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Committed items (the engine reads them once at start to rebuild its timers)."""
        it = self.db.iter()
        it.seek_to_first()
        while it.valid():
            key = bytes(it.key())
            if key not in _INTERNAL:
                yield key.decode(), bytes(it.value())
            it.next()

    def scan(self, start: str, stop: str, limit: int) -> list[tuple[str, bytes]]:
        """The first `limit` items with start <= key < stop in key order, staged writes
        included (RocksDB's bytewise order of keys)."""
        lo, hi = start.encode(), stop.encode()
        staged: dict[bytes, bytes | None] = {}
        for writes in (*self.unwritten, self.pending):  # oldest first: later ones win
            for k, v in writes.items():
                if lo <= k < hi:
                    staged[k] = v
        rows: dict[bytes, bytes | None] = {}
        it = self.db.iter()
        it.seek(lo)
        want = limit + len(staged)  # (staged deletes may hide that many)
        while it.valid() and len(rows) < want:
            key = bytes(it.key())
            if key >= hi:
                break
            if key not in _INTERNAL:
                rows[key] = bytes(it.value())
            it.next()
        rows.update(staged)
        found = sorted((k, v) for k, v in rows.items() if v is not None)[:limit]
        return [(k.decode(), v) for k, v in found]

    def index_current(self) -> bool:
        """Whether the `t/` keys in RocksDB index the states as they are (see the module)."""
        return self.db.get(INDEX_AT_KEY) == self.db.get(FAUST_OFFSET_KEY)

    def persisted_changelog_offset(self) -> int | None:
        raw = self.db.get(FAUST_OFFSET_KEY)
        return int(raw) if raw is not None else None

    def wipe(self) -> None:
        """Delete everything of this partition (state, input offsets, changelog offset)."""
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        it = self.db.iter()
        it.seek_to_first()
        while it.valid():
            batch.delete(bytes(it.key()))
            it.next()
        self.db.write(batch)
        self.pending.clear()
        self.unwritten.clear()
        self.offsets = {}

    def stage_offsets(self, offsets: dict[str, int]) -> None:
        """Stage the input offsets applied with the state (at each commit that moved them)."""
        self.offsets = dict(offsets)
        self.pending[OFFSETS_KEY] = jsonbytes.dumps(self.offsets)

    def drain(self) -> dict[bytes, bytes | None]:
        """The staged writes, to be made durable by `write()` (batches in order); until then
        `get` still reads them (the engine may have evicted those keys from its cache)."""
        pending, self.pending = self.pending, {}
        if pending:
            self.unwritten.append(pending)
        return pending

    def write(self, writes: dict[bytes, bytes | None], changelog_offset: int | None) -> None:
        """Apply drained writes of the engine atomically, with Faust's persisted changelog
        offset (the engine's writes carry its index: it then matches that offset)."""
        self._write(writes, changelog_offset, index=True)
        if self.unwritten and self.unwritten[0] is writes:
            self.unwritten.popleft()

    def _write(
        self, writes: dict[bytes, bytes | None], changelog_offset: int | None, index: bool
    ) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        offset = self.db.get(FAUST_OFFSET_KEY)
        if changelog_offset is not None:
            offset = str(changelog_offset).encode()
            batch.put(FAUST_OFFSET_KEY, offset)
        if index:
            if offset is None:
                batch.delete(INDEX_AT_KEY)
            else:
                batch.put(INDEX_AT_KEY, offset)
        self.db.write(batch)

    def compact_erased(self, writes: dict[bytes, bytes | None]) -> None:
        """Remove from disk every trace of the keys `writes` deleted (a written batch holding
        erasures): flush the memtable (its write-ahead log file is then deleted), compact each
        deleted state and alias key and the index range down to the last level (where the
        tombstones are dropped too), and make one more version edit (the MANIFEST rolls)."""
        db = self.db
        db.flush(True)
        for key in sorted(k for k, v in writes.items() if v is None):
            if key[:2] in _ERASED_PREFIXES:
                db.compact_range(key, key)
        db.compact_range(*_INDEX_RANGE)
        done = db.get(ERASED_KEY)
        db.put(ERASED_KEY, str(int(done) + 1 if done is not None else 1).encode())
        db.flush(True)
        db.flush_wal(True)

    def apply_changelog(self, records: list[tuple[bytes, bytes | None, int]]) -> None:
        """Apply changelog records (key, value, offset) read after Faust's recovery."""
        if not records:
            return
        # (states without their index: the offset moves past INDEX_AT_KEY's, see the module)
        self._write({k: v for k, v, _ in records}, max(off for _, _, off in records), False)
        raw = self.db.get(OFFSETS_KEY)
        self.offsets = orjson.loads(raw) if raw else {}
