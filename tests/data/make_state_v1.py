"""Writes the version-1 consumer-state fixture: `python -m tests.data.make_state_v1`.

Run once at commit 8db3b87 (the last release writing STATE_VERSION 1, 33 positions) to make
`state_v1.jsonl` (the exact bytes of each stored consumer state, one per line) and
`state_v1.expected.json` (every field of each state as that release decoded it). The test
tests/unit/engine/test_state_versions.py checks that later engines load those bytes into the
same state. Re-running it with a later engine would write that engine's version instead: the
fixture is history, do not regenerate it.

The consumers: a merged one (aliases, traits, email, cart, pending and fired timers), one with
a location, a withdrawn consent, a discounted and a refunded order, and one that only browsed
(a pending browse timer, many seen message ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.outputs import Outputs
from streams.engine.rules import load_rules
from streams.engine.state import ConsumerState
from streams.engine.store import MemoryStore

HERE = Path(__file__).resolve().parent
RULES = HERE.parents[1] / "examples" / "bike-shop" / "rules.yaml"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def _ev(kind: str, t: float, n: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": iso(t), "messageId": f"fixture-{n}", **fields}


def events() -> list[dict[str, Any]]:
    road = {"category": "Road", "brand": "Rapid", "price": 1299.0, "product_id": "r1"}
    mtb = {"category": "Mountain", "brand": "VoltBike", "price": 2499.0, "product_id": "m1"}
    berlin = {"location": {"country": "DE", "city": "Berlin", "latitude": 52.5,
                           "longitude": 13.4}}
    evs = [
        # a1 browses anonymously, then signs in as u1: the profiles merge
        _ev("track", T0, 1, anonymousId="a1", event="Product Viewed", properties=road),
        _ev("track", T0 + MIN, 2, anonymousId="a1", event="Product Added",
            properties={**road, "quantity": 1}),
        _ev("identify", T0 + 2 * MIN, 3, anonymousId="a1", userId="u1",
            traits={"email": "u1@example.com", "gender": "female", "country": "FR"}),
        _ev("track", T0 + 3 * MIN, 4, userId="u1", event="Order Completed",
            properties={"order_id": "o1", "revenue": 1299.0, "coupon": "SPRING",
                        "products": [road]}),
        # u2: located, orders twice with a discount, refunds one, withdraws consent
        _ev("track", T0 + 4 * MIN, 5, userId="u2", event="Product Viewed", properties=mtb,
            context=berlin),
        _ev("track", T0 + 5 * MIN, 6, userId="u2", event="Order Completed",
            properties={"order_id": "o2", "revenue": 2499.0, "discount": 100.0,
                        "products": [mtb]}),
        _ev("track", T0 + 6 * MIN, 7, userId="u2", event="Order Completed",
            properties={"order_id": "o3", "total": 59.5}),
        _ev("track", T0 + 7 * MIN, 8, userId="u2", event="Order Refunded",
            properties={"order_id": "o3"}),
        _ev("track", T0 + 8 * MIN, 9, userId="u2", event="Product Added",
            properties={**mtb, "product_id": "m2", "quantity": 2}),
        # (u2's cart reminder fires at +38 min, on the watermark of the next event)
        _ev("track", T0 + HOUR, 10, userId="u1", event="Product Added",
            properties={"product_id": "acc1", "price": 35.0, "category": "Accessories"}),
        _ev("page", T0 + HOUR + MIN, 11, userId="u2",
            context={"consent": {"categoryPreferences": {"marketing": False}}}),
    ]
    # u3 only browses: many message ids, a pending browse reminder
    for i in range(40):
        evs.append(_ev("track", T0 + 2 * HOUR + i * MIN, 100 + i, userId="u3",
                       event="Product Viewed", properties={**mtb, "price": 400.0 + i}))
    return evs


def run() -> Engine:
    eng = Engine(load_rules(RULES), MemoryStore())
    out = Outputs()
    for ev in events():
        out.extend(eng.process(ev))
        while out.forwards:  # one partition: every forward comes back to it
            fwd = out.forwards.pop(0)
            out.extend(eng.receive(fwd))
    eng.advance(T0 + 2 * HOUR + 10 * MIN)  # fires u1's cart reminder, not u3's browse one
    eng.flush()
    return eng


def fields(state: ConsumerState) -> dict[str, Any]:
    """Every field of a state as JSON values (the test reads later engines' states alike)."""
    out: dict[str, Any] = {}
    for name in ConsumerState.__slots__:
        value = getattr(state, name)
        if name == "timers":
            value = {k: t.to_json() for k, t in value.items()}
        elif name == "price":
            value = sorted(value.items())
        out[name] = value
    return out


def main() -> None:
    eng = run()
    keys = sorted(k for k, _ in eng.store.items() if k.startswith("c/"))
    lines = [eng.store.get(k) or b"" for k in keys]
    (HERE / "state_v1.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    expected = [fields(ConsumerState.from_bytes(line)) for line in lines]
    (HERE / "state_v1.expected.json").write_bytes(
        orjson.dumps(expected, option=orjson.OPT_INDENT_2) + b"\n"
    )


if __name__ == "__main__":
    main()
