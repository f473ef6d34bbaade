"""A seeded corpus of hostile input lines: what a careless producer or an attacker sends.

    python -m tests.hostile OUT.jsonl [--lines 6000] [--seed 12]

Wrong types in every field, 1 MB strings, 1,000-deep nesting, NaN/Infinity literals, invalid
UTF-8, odd timestamps, junk product arrays, non-objects, truncated JSON and duplicates, mixed
with valid events. `generate` also says, for each line whose fate does not depend on the
engine's state, the reason it must be refused with (valid events and duplicates have none).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MB = 1_000_000
ECOMMERCE = (
    "Product Viewed",
    "Product Clicked",
    "Product List Viewed",
    "Product Added",
    "Product Removed",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
)
# values of the wrong type for any field
JUNK: tuple[Any, ...] = ({}, [], ["track"], [1, 2], 1.5, True, False, {"a": {"b": 1}})


class Corpus:
    """Builds lines; `expected[i]` is the dead-letter reason of line i (1-based) when fixed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lines: list[bytes] = []
        self.expected: dict[int, str] = {}
        self.valid: list[bytes] = []
        self.t = T0
        self.n = 0

    # building blocks
    def tick(self) -> str:
        self.t += self.rng.uniform(1, 120)
        return _iso(self.t)

    def valid_event(self) -> dict[str, Any]:
        rng = self.rng
        self.n += 1
        uid = f"user-{rng.randrange(300)}"
        kind = rng.random()
        ev: dict[str, Any] = {
            "messageId": f"m-{self.n}",
            "timestamp": self.tick(),
            "userId": uid,
            "context": {"location": {"country": "DE", "city": "Berlin",
                                     "latitude": 52.5, "longitude": 13.4}},
        }
        if kind < 0.1:
            ev.update(type="identify", anonymousId=f"anon-{rng.randrange(300)}",
                      traits={"email": f"{uid}@example.com", "age": rng.randrange(18, 80)})
        elif kind < 0.15:
            ev.update(type="page", name="Home")
        else:
            name = rng.choice(ECOMMERCE)
            price = round(rng.uniform(5, 3000), 2)
            props: dict[str, Any] = {"product_id": f"p-{rng.randrange(50)}",
                                     "category": rng.choice(["road", "mountain", "city"]),
                                     "brand": "velo", "price": price, "quantity": 1}
            if name.startswith("Order") or name == "Checkout Started":
                props = {"order_id": f"o-{rng.randrange(200)}", "revenue": price,
                         "products": [{"product_id": "p-1", "price": price, "quantity": 1}]}
            ev.update(type="track", event=name, properties=props)
        return ev

    def add(self, line: bytes, reason: str | None = None) -> None:
        self.lines.append(line)
        if reason is not None:
            self.expected[len(self.lines)] = reason

    def add_event(self, ev: Any, reason: str | None = None) -> None:
        self.add(orjson.dumps(ev), reason)

    # the kinds of line
    def good(self) -> None:
        line = orjson.dumps(self.valid_event())
        self.valid.append(line)
        self.add(line)

    def duplicate(self) -> None:
        if self.valid:
            self.add(self.rng.choice(self.valid[-200:]))  # a duplicate, or a late redelivery

    def wrong_type(self) -> None:
        ev = self.valid_event()
        junk = self.rng.choice(JUNK)
        field = self.rng.choice(
            ["type", "event", "userId", "anonymousId", "messageId", "timestamp", "properties",
             "traits", "context", "previousId", "name"]
        )
        if (field == "event" and ev["type"] != "track") or (
            field == "name" and ev["type"] != "page"
        ):
            field = "timestamp"
        if field == "previousId":
            ev.update(type="alias")
            ev.pop("event", None)
        if field in ("properties", "traits", "context") and isinstance(junk, dict):
            junk = [junk]
        if field == "anonymousId" and junk is False:
            junk = True
        ev[field] = junk
        self.add_event(ev, "bad_type")

    def wrong_property(self) -> None:
        ev = self.valid_event()
        ev.update(type="track", event=self.rng.choice(["Order Completed", "Product Added"]))
        key = self.rng.choice(["price", "quantity", "revenue", "discount", "product_id",
                               "order_id"])
        if ev["event"] == "Product Added" and key in ("revenue", "discount", "order_id"):
            key = "price"
        if ev["event"] == "Order Completed" and key in ("price", "quantity"):
            key = "revenue"
        junk: list[Any] = [[1], {"v": 1}, True]
        value = self.rng.choice(junk + ([1.5] if key.endswith("_id") else ["12.5"]))
        ev["properties"] = {key: value}
        self.add_event(ev, "bad_type")

    def bad_money(self) -> None:
        ev = self.valid_event()
        ev.update(type="track", event="Order Completed")
        value = self.rng.choice([-1, -0.01, 1e30, 10**19])
        ev["properties"] = {"order_id": "o-bad", self.rng.choice(["revenue", "discount"]): value}
        self.add_event(ev, "invalid_value")

    def junk_products(self) -> None:
        ev = self.valid_event()
        ev.update(type="track", event="Order Completed")
        products, reason = self.rng.choice([
            ("x", "bad_type"),
            ({"product_id": "p"}, "bad_type"),
            ([1, "a", None], "bad_type"),
            ([{"price": "12"}], "bad_type"),
            ([{"price": -1}], "invalid_value"),
            ([{"quantity": -3, "price": 1}], "invalid_value"),
            ([{"product_id": [1]}], "bad_type"),
            ([{"product_id": "p"}] * 2000, "too_large"),
        ])
        ev["properties"] = {"order_id": "o-1", "products": products}
        self.add_event(ev, reason)

    def non_finite(self) -> None:
        ev = self.valid_event()
        text = orjson.dumps({**ev, "type": "track", "event": "Product Viewed",
                             "properties": {"price": 1}})
        literal = self.rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400"])
        self.add(text.replace(b'"price":1', b'"price":' + literal), "invalid_json")

    def huge_string(self) -> None:
        ev = self.valid_event()
        big = "x" * MB
        where, reason = self.rng.choice([
            ("userId", "too_large"),
            ("messageId", "too_large"),
            ("event", "too_large"),
            ("category", "too_large"),
            ("traits", "too_large"),
        ])
        if where == "event":
            ev.update(type="track", event=big)
        elif where == "category":
            ev.update(type="track", event="Product Viewed", properties={"category": big})
        elif where == "traits":
            ev.update(type="identify", traits={"bio": big})
            ev.pop("event", None)
        else:
            ev[where] = big
        self.add_event(ev, reason)

    def deep(self) -> None:
        """1,000-deep traits (kept in the profile): refused. (Built as text: orjson writes at
        most 254 levels.)"""
        ev = self.valid_event()
        ev.update(type="identify", traits={"nested": "x"})
        ev.pop("event", None)
        nested = b'"nested":' + b'{"x":[' * 500 + b"1" + b"]}" * 500
        self.add(orjson.dumps(ev).replace(b'"nested":"x"', nested), "too_deep")

    def deep_unused(self) -> None:
        """1,000-deep in a property nothing reads: applied (unless it must be forwarded)."""
        ev = self.valid_event()
        ev["properties"] = {"extra": "x"}
        nested = b'"extra":' + b'{"x":[' * 500 + b"1" + b"]}" * 500
        self.add(orjson.dumps(ev).replace(b'"extra":"x"', nested))

    def deep_too_deep_for_json(self) -> None:
        self.add(b'{"type":"track","properties":' + b"[" * 2000 + b"]" * 2000 + b"}",
                 "invalid_json")

    def invalid_utf8(self) -> None:
        line = orjson.dumps(self.valid_event())
        cut = self.rng.randrange(1, len(line) - 1)
        self.add(line[:cut] + self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) +
                 line[cut:], "invalid_json")

    def odd_time(self) -> None:
        ev = self.valid_event()
        stamp, reason = self.rng.choice([
            ("0001-01-01T00:00:00Z", "time_out_of_range"),
            ("9999-12-31T23:59:59-14:00", "time_out_of_range"),
            ("2026-W02-1", "time_out_of_range"),
            ("20260105T000000Z", "time_out_of_range"),
            ("1989-12-31T23:59:59Z", "time_out_of_range"),
            ("2100-01-01T00:00:00Z", "time_out_of_range"),
            ("2026-02-30T00:00:00Z", "invalid_value"),
            ("yesterday", "invalid_value"),
            ("2026-01-05T00:00:00+25:00", "invalid_value"),
            (1767225600, "bad_type"),
            ("2" * 500, "too_large"),
        ])
        ev["timestamp"] = stamp
        self.add_event(ev, reason)

    def far_ahead(self) -> None:
        """In range but years ahead of the clock: refused, and the clock stays."""
        ev = self.valid_event()
        ev["timestamp"] = "2099-06-01T00:00:00Z"
        self.add_event(ev, "time_out_of_range")

    def not_an_object(self) -> None:
        line, reason = self.rng.choice([
            (b"[1, 2]", "bad_type"), (b'"x"', "bad_type"), (b"null", "bad_type"),
            (b"123", "bad_type"), (b'{"type": "track", "event": ', "invalid_json"),
            (b"{oops", "invalid_json"), (b"\x00\x01\x02", "invalid_json"),
        ])
        self.add(line, reason)

    def missing(self) -> None:
        ev = self.valid_event()
        ev.pop(self.rng.choice(["type", "timestamp"]))
        self.add_event(ev, "missing_field")


def generate(lines: int = 6000, seed: int = 12) -> tuple[list[bytes], dict[int, str]]:
    """`lines` input lines (blank ones included) and the reason each fixed dead letter has."""
    c = Corpus(seed)
    for _ in range(200):  # every partition has a clock before the far-ahead events come
        c.good()
    kinds: list[tuple[float, Callable[[], None]]] = [
        (0.45, c.good), (0.06, c.duplicate), (0.12, c.wrong_type), (0.06, c.wrong_property),
        (0.04, c.bad_money), (0.06, c.junk_products), (0.03, c.non_finite),
        (0.002, c.huge_string), (0.005, c.deep), (0.003, c.deep_unused),
        (0.003, c.deep_too_deep_for_json),
        (0.04, c.invalid_utf8), (0.06, c.odd_time), (0.01, c.far_ahead),
        (0.03, c.not_an_object), (0.02, c.missing),
    ]
    weights = [w for w, _ in kinds]
    while len(c.lines) < lines:
        if c.rng.random() < 0.01:
            c.add(b"")  # blank lines are not input
            continue
        c.rng.choices(kinds, weights)[0][1]()
    return c.lines, c.expected


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def _iso(t: float) -> str:
    from streams.engine.events import iso

    return iso(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--lines", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=12)
    a = ap.parse_args()
    lines, expected = generate(a.lines, a.seed)
    write(Path(a.out), lines)
    print(f"{len(lines)} lines, {len(expected)} with a fixed reason -> {a.out}")


if __name__ == "__main__":
    main()
