"""Restart: time to the first processed event for a partition with many pending timers.

    python bench/restart.py [--consumers 100000 1000000] [--dir DIR]

For each size, a real RocksDB partition (rocksdict, as the workers open it) holds that many
consumers, each with a pending cart timer (due a day after the restart time) and the due-time
index in `t/` keys. Printed, from engine start (store already open) and from opening the
RocksDB partition, to the first event processed:

- index: this release, which pages in the due-time index lazily (one page of 4096 entries);
- full scan: the previous release's start-up, measured on the same database in the same run:
  decode every consumer to rebuild the timer heap (its loop, verbatim), then the same engine
  start and event.

Every consumer has the same small state (one event, one cart item, one timer: about 300 bytes,
against about 800 for a bike-shop replay's average consumer): decoding is cheaper than on real
states, so the full-scan figures are a lower bound. Both are measured with a warm page cache
(the database is read once before). Building the 1M partition takes a minute or two.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rocksdict import Options, Rdict, WriteBatch  # noqa: E402

from streams import compiled  # noqa: E402
from streams.engine.core import META_KEY, Engine  # noqa: E402
from streams.engine.events import iso  # noqa: E402
from streams.engine.rules import load_rules  # noqa: E402
from streams.engine.state import ConsumerState, Timer  # noqa: E402
from streams.engine.timers import ENTRY_VALUE, TimerIndex, entry_key  # noqa: E402
from streams.tables import TableStore  # noqa: E402

T0 = 1_767_225_600.0  # 2026-01-01
DAY = 86400.0
RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"


def build(path: Path, n: int) -> None:
    db = Rdict(str(path), Options(raw_mode=True))
    batch = WriteBatch(raw_mode=True)
    for i in range(n):
        cid = f"user-{i:08d}"
        s = ConsumerState(cid, T0 - DAY)
        s.events = 1
        s.cart_adds = 1
        s.cart = {"p-1": 99.0}
        due = T0 + DAY + i / 1000.0
        s.timers["cart-abandonment"] = Timer(due, T0 - DAY, f"arm-{i}", ["p-1"])
        batch.put(b"c/" + cid.encode(), s.to_bytes())
        batch.put(entry_key(due, cid, "cart-abandonment").encode(), ENTRY_VALUE)
        if len(batch) >= 100_000:
            db.write(batch)
            batch = WriteBatch(raw_mode=True)
    batch.put(META_KEY.encode(), orjson.dumps({"watermark": T0 - DAY, "index": 1}))
    db.write(batch)
    db.close()


def first_event() -> dict[str, object]:
    return {"type": "track", "event": "Product Viewed", "userId": "newcomer",
            "messageId": "first", "timestamp": iso(T0 + 3600.0),
            "properties": {"product_id": "p-2", "category": "road", "price": 500}}


def full_scan(store: TableStore) -> None:
    """The previous release's Engine.__init__ loop, verbatim."""
    timers = TimerIndex()
    for key, value in store.items():
        if key.startswith("c/"):
            state = ConsumerState.from_bytes(value)
            for name, timer in state.timers.items():
                timers.push(timer.due, state.id, name)


def start(path: Path, rules: object, scan: bool) -> tuple[float, float]:
    """(seconds from engine start, seconds from RocksDB open) to the first processed event."""
    t_open = time.perf_counter()
    store = TableStore(Rdict(str(path), Options(raw_mode=True)), 0)
    t_engine = time.perf_counter()
    if scan:
        full_scan(store)
    engine = Engine(rules, store)  # type: ignore[arg-type]
    out = engine.process(first_event())
    done = time.perf_counter()
    assert not out.dead_letters and engine.stats["events"] == 1
    store.db.close()
    return done - t_engine, done - t_open


def best(f: Callable[[], tuple[float, float]], repeat: int) -> tuple[float, float]:
    runs = [f() for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--consumers", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dir", help="where to build the databases (default: a temporary dir)")
    ap.add_argument("--repeat", type=int, default=3, help="starts of each kind; the best counts")
    a = ap.parse_args()
    rules = load_rules(RULES)
    base = Path(a.dir or tempfile.mkdtemp(prefix="mm-restart-"))
    print(f"engine: {compiled.mode()} (MICROMARKETING_PURE=1 runs the source)")
    print(f"{'consumers':>10} | {'from engine start':^31} | {'from RocksDB open':^31}")
    print(f"{'':>10} | {'index':>9} {'full scan':>10} {'ratio':>9} |"
          f" {'index':>9} {'full scan':>10} {'ratio':>9}")
    try:
        for n in a.consumers:
            path = base / f"p-{n}"
            t = time.perf_counter()
            build(path, n)
            built = time.perf_counter() - t
            TableStore(Rdict(str(path), Options(raw_mode=True)), 0).db.close()
            full_scan_warm = TableStore(Rdict(str(path), Options(raw_mode=True)), 0)
            sum(1 for _ in full_scan_warm.items())  # warm the page cache for both
            full_scan_warm.db.close()
            new_e, new_o = best(partial(start, path, rules, False), a.repeat)
            old_e, old_o = best(partial(start, path, rules, True), 1 if n > 200_000 else 2)
            print(f"{n:>10,} | {new_e * 1e3:>7.1f}ms {old_e:>9.2f}s {old_e / new_e:>8.0f}x |"
                  f" {new_o * 1e3:>7.1f}ms {old_o:>9.2f}s {old_o / new_o:>8.0f}x"
                  f"   (built in {built:.0f}s)", flush=True)
            shutil.rmtree(path)
    finally:
        if not a.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
