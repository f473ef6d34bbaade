"""TableStore over a real rocksdict database: staged, drained-but-unwritten and durable reads."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Options, Rdict

from streams.tables import FAUST_OFFSET_KEY, TableStore


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
