"""TableStore over a real rocksdict database: staged, drained-but-unwritten and durable reads."""

from __future__ import annotations

import math
from pathlib import Path

from rocksdict import Options, Rdict

from streams.tables import FAUST_OFFSET_KEY, TableStore, shared


def _db(path: Path) -> Rdict:
    return Rdict(str(path), Options(raw_mode=True))


def test_a_drained_write_is_read_back_until_it_is_written(tmp_path: Path) -> None:
    db = _db(tmp_path / "p0")
    store = TableStore(db, 0)
    store.put("c/a", b"v1")
    store.write(store.drain(), 10)
    store.put("c/a", b"v2")
    first = store.drain()  # batch 1 in flight: acknowledged later
    store.put("c/b", b"b1")
    store.delete("c/a")
    second = store.drain()  # batch 2 in flight too
    assert db.get(b"c/a") == b"v1"
    # the engine evicted its cache: it must see its own latest writes, not RocksDB's
    assert store.get("c/a") is None and store.get("c/b") == b"b1"
    store.write(first, 11)
    assert store.get("c/a") is None and db.get(b"c/a") == b"v2"
    store.write(second, 12)
    assert store.get("c/a") is None and store.get("c/b") == b"b1"
    assert not store.unwritten and store.persisted_changelog_offset() == 12
    assert db.get(FAUST_OFFSET_KEY) == b"12"
    db.close()


def test_offsets_are_staged_with_the_state_and_survive_reopening(tmp_path: Path) -> None:
    db = _db(tmp_path / "p1")
    store = TableStore(db, 1)
    store.put("c/x", b"x")
    store.stage_offsets({"clickstream": 41})
    store.write(store.drain(), None)
    db.close()
    again = TableStore(_db(tmp_path / "p1"), 1)
    assert again.offsets == {"clickstream": 41}
    assert again.get("c/x") == b"x" and dict(again.items()) == {"c/x": b"x"}
    assert again.persisted_changelog_offset() is None
    again.db.close()


def test_scan_reads_a_key_range_in_order_staged_writes_included(tmp_path: Path) -> None:
    db = _db(tmp_path / "p2")
    store = TableStore(db, 2)
    for key in ("t/03", "t/01", "t/05", "c/x", "t/07"):
        store.put(key, key.encode())
    store.write(store.drain(), None)
    store.put("t/02", b"new")  # staged
    store.delete("t/03")  # staged
    in_flight = store.drain()
    store.delete("t/05")  # staged, later batch
    assert store.scan("t/", "t0", 10) == [
        ("t/01", b"t/01"), ("t/02", b"new"), ("t/07", b"t/07")]
    assert store.scan("t/", "t0", 2) == [("t/01", b"t/01"), ("t/02", b"new")]
    assert store.scan("t/02\0", "t0", 10) == [("t/07", b"t/07")]
    store.write(in_flight, None)
    assert [k for k, _ in store.scan("", "\xff", 10)] == ["c/x", "t/01", "t/02", "t/07"]
    db.close()


def test_an_engine_restarts_on_rocksdb_from_its_index(tmp_path: Path) -> None:
    from streams.engine.core import Engine
    from streams.engine.timers import decode_entry_key
    from tests.unit.engine.helpers import MIN, T0, rules, run, track

    text = """
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    offer: x
"""
    store = TableStore(_db(tmp_path / "p3"), 3)
    eng = Engine(rules(text), store)
    run(eng, *[track(f"u{i}", "Product Added", T0 + i, product_id="p") for i in range(5)])
    eng.flush()
    store.write(store.drain(), None)
    store.db.close()

    again = TableStore(_db(tmp_path / "p3"), 3)
    assert again.index_current()
    restarted = Engine(rules(text), again)
    assert restarted.next_due() == T0 + 30 * MIN
    out = restarted.advance(T0 + 60 * MIN)
    assert [t["consumer_id"] for t in out.triggers] == [f"u{i}" for i in range(5)]
    restarted.flush()
    # the timers' keys are gone; the attribution windows the triggers opened have theirs
    left = [decode_entry_key(k) for k, _ in again.scan("t/", "t0", 10)]
    assert [(due, name) for due, _, name in left] == [
        (math.nextafter(T0 + i + 30 * MIN + 7 * 86400.0, math.inf), "~attr") for i in range(5)
    ]
    again.db.close()


CART = """
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    unless: Order Completed
    wait: 30m
    offer: x
"""


def test_the_index_is_written_to_rocksdb_but_never_to_the_changelog(tmp_path: Path) -> None:
    from streams.engine.core import Engine
    from tests.unit.engine.helpers import T0, rules, run, track

    store = TableStore(_db(tmp_path / "p6"), 6)
    eng = Engine(rules(CART), store)
    run(eng, *[track(f"u{i}", "Product Added", T0 + i, product_id="p") for i in range(3)])
    eng.flush()
    writes = store.drain()
    assert sum(k.startswith(b"t/") for k in writes) == 3
    logged = dict(shared(writes))
    assert not [k for k in logged if k.startswith(b"t/")]
    assert logged == {k: v for k, v in writes.items() if not k.startswith(b"t/")}
    assert {b"c/u0", b"c/u1", b"c/u2"} <= set(logged)
    store.write(writes, 7)
    assert store.db.get(b"t/") is None and store.scan("t/", "t0", 10)  # in RocksDB
    store.db.close()


def test_a_moved_re_check_is_written_to_rocksdb_but_never_to_the_changelog(tmp_path: Path) -> None:
    from streams.engine.core import Engine
    from tests.unit.engine.helpers import DAY, T0, rules, run, track

    drift = "segments:\n  - name: drifting\n    when: days_since_last_seen * 1 > 5\n"
    store = TableStore(_db(tmp_path / "p8"), 8)
    eng = Engine(rules(drift), store)
    run(eng, track("u1", "Product Viewed", T0, product_id="p"))
    eng.flush()
    store.write(store.drain(), 1)
    eng.advance(T0 + 1.5 * DAY)  # a re-check that changes nothing
    eng.flush()
    writes = store.drain()
    assert b"r/u1" in writes and b"c/u1" not in writes
    assert not [k for k, _ in shared(writes) if k.startswith((b"r/", b"t/"))]
    store.write(writes, 2)
    reopened = Engine(rules(drift), TableStore(store.db, 8))
    assert reopened.consumer("u1").recheck == eng.consumer("u1").recheck  # type: ignore[union-attr]
    store.db.close()


def test_a_state_caught_up_from_the_changelog_gets_its_index_rebuilt(tmp_path: Path) -> None:
    from streams.engine.core import Engine
    from streams.engine.timers import decode_entry_key
    from tests.unit.engine.helpers import MIN, T0, rules, run, track

    added = [track(f"u{i}", "Product Added", T0 + i, product_id="p") for i in range(3)]
    store = TableStore(_db(tmp_path / "p7"), 7)
    eng = Engine(rules(CART), store)
    run(eng, *added)
    eng.flush()
    store.write(store.drain(), 10)
    store.db.close()
    # meanwhile another worker owned the partition: u0 ordered (its timer is disarmed) and u9
    # put a product in the cart; this worker catches up on the changelog those records wrote
    other = TableStore(_db(tmp_path / "other"), 7)
    ahead = Engine(rules(CART), other)
    run(ahead, *added, track("u0", "Order Completed", T0 + 5 * MIN, order_id="o", revenue=1.0),
        track("u9", "Product Added", T0 + 6 * MIN, product_id="p"))
    ahead.flush()
    records = [(k, v, 11 + i) for i, (k, v) in enumerate(shared(other.drain()))]

    caught = TableStore(_db(tmp_path / "p7"), 7)
    caught.apply_changelog(records)
    assert not caught.index_current()  # its t/ keys still say u0, and nothing of u9
    restarted = Engine(rules(CART), caught)
    out = restarted.advance(T0 + 60 * MIN)
    assert sorted(t["consumer_id"] for t in out.triggers) == ["u1", "u2", "u9"]
    restarted.flush()
    caught.write(caught.drain(), None)
    assert caught.index_current()
    left = {decode_entry_key(k)[1:] for k, _ in caught.scan("t/", "t0", 100)}
    assert left == {("u1", "~attr"), ("u2", "~attr"), ("u9", "~attr")}
    caught.db.close()
    other.db.close()


def test_compact_erased_leaves_no_trace_in_files_wal_or_manifest(tmp_path: Path) -> None:
    from faust.stores.rocksdb import RocksDBOptions

    from streams.tables import erasable

    options = RocksDBOptions(use_rocksdict=True)
    erasable(options)
    path = tmp_path / "p4"
    store = TableStore(options.open(path), 4)
    gone, kept = b"Zq8vXw3Kp0Lm", b"Bm3cGj8Ld5Ri"

    def found(needle: bytes) -> list[str]:
        return sorted(f.name for f in path.iterdir() if needle in f.read_bytes())

    store.put("c/" + gone.decode(), b"{}")  # the smallest key of its file: named in the MANIFEST
    store.put("c/" + kept.decode(), b"{}")
    store.write(store.drain(), None)
    store.db.flush(True)
    assert any(name.startswith("MANIFEST") for name in found(gone))
    store.put("t/0/" + gone.decode(), b"x")  # in the write-ahead log only
    store.write(store.drain(), None)
    store.delete("c/" + gone.decode())
    store.delete("t/0/" + gone.decode())
    erasure = store.drain()
    store.write(erasure, None)
    assert found(gone)
    store.compact_erased(erasure)
    assert found(gone) == [] and found(kept) != []
    assert store.get("c/" + kept.decode()) == b"{}" and store.get("c/" + gone.decode()) is None
    store.db.close()


def _erasable(path: Path, partition: int) -> TableStore:
    """A partition database opened as the worker opens it (`erasable` RocksDB options)."""
    from faust.stores.rocksdb import RocksDBOptions

    from streams.tables import erasable

    options = RocksDBOptions(use_rocksdict=True)
    erasable(options)
    return TableStore(options.open(path), partition)


def _on_disk(store: TableStore, *compact: bytes | None) -> None:
    """Write the staged keys and flush them to a file (compacted over `compact`, if given)."""
    store.write(store.drain(), None)
    store.db.flush(True)
    if compact:
        store.db.compact_range(*compact)


def _files_holding(path: Path, text: str) -> list[str]:
    return [f.name for f in path.iterdir() if text.encode() in f.read_bytes()]


def _states_beside(store: TableStore, gone: str) -> None:
    """A file of states, the erased consumer's and another's, compacted on its own."""
    store.put("c/" + gone, b"{}")
    store.put("c/kept", b"{}")
    _on_disk(store, b"c/", b"c0")


def test_compact_erased_reaches_index_entries_deleted_before_the_erasure(tmp_path: Path) -> None:
    path = tmp_path / "p5"
    store = _erasable(path, 5)
    gone = "Zq8vXw3Kp0Lm"
    store.put("t/0/" + gone, b"x")  # a timer of the consumer, fired before the erasure
    _on_disk(store, None, None)  # a file of index keys in the last level
    _states_beside(store, gone)
    store.delete("t/0/" + gone)
    _on_disk(store)
    store.delete("c/" + gone)
    erasure = store.drain()  # the erasure's batch no longer holds the index entry
    store.write(erasure, None)
    store.compact_erased(erasure)
    assert not _files_holding(path, gone)
    store.db.close()


def test_compact_erased_reaches_the_moved_re_check_of_the_consumer(tmp_path: Path) -> None:
    path = tmp_path / "p9"
    store = _erasable(path, 9)
    gone = "Zq8vXw3Kp0Lm"
    store.put("r/" + gone, b"1767225600.0")
    store.put("r/kept", b"1767225600.0")
    _on_disk(store, None, None)  # a file of moved re-checks in the last level
    _states_beside(store, gone)
    store.delete("c/" + gone)
    store.delete("r/" + gone)
    erasure = store.drain()
    store.write(erasure, None)
    assert _files_holding(path, gone)
    store.compact_erased(erasure)
    assert not _files_holding(path, gone)
    store.db.close()
