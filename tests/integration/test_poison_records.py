"""Poison records written straight to the input topics of a live worker: each becomes exactly one
dead letter with its reason, the worker stays up, and a normal consumer's trigger still fires."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.broker import EmbeddedBroker
from streams.contract import CLICKSTREAM, DEAD_LETTERS, IDENTITIES, TRIGGERS_RETARGETING
from streams.engine.events import iso
from streams.engine.partitioning import partition_for
from tests.integration.test_live_worker import PARTITIONS, Live

pytestmark = pytest.mark.integration

T0 = 1_767_607_200.0  # 2026-01-05T10:00:00Z
MIN = 60.0


@pytest.fixture
def poisoned(broker: EmbeddedBroker, unique: str, tmp_path: Path) -> Iterator[Live]:
    lv = Live(broker, unique, tmp_path)
    try:
        yield lv
    finally:
        lv.stop()


def track(uid: str, name: str, t: float, mid: str, **props: Any) -> dict[str, Any]:
    return {"messageId": mid, "type": "track", "event": name, "userId": uid,
            "timestamp": iso(t), "properties": props}


def identify(uid: str, anon: str, t: float, mid: str) -> dict[str, Any]:
    return {"messageId": mid, "type": "identify", "userId": uid, "anonymousId": anon,
            "timestamp": iso(t), "traits": {}}


def deep(levels: int) -> bytes:
    """An object nested `levels` deep, as JSON (orjson encodes no more than 254 levels)."""
    return b'{"x":' * (levels - 1) + b'{"leaf":1}' + b"}" * (levels - 1)


def test_poison_records_become_one_dead_letter_each_and_the_next_trigger_still_fires(
    poisoned: Live,
) -> None:
    live = poisoned
    # (marker, topic, key, value, expected reason): every value carries its marker
    poison: list[tuple[str, str, str, bytes, str]] = []

    def add(name: str, topic: str, key: str, value: bytes, reason: str) -> None:
        assert f"poison-{name}".encode() in value
        poison.append((f"poison-{name}", topic, key, value, reason))

    def js(obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj)

    object_event = track("p-obj", "x", T0 + 1, "poison-object-event")
    object_event["event"] = {}
    add("object-event", CLICKSTREAM, "p-obj", js(object_event), "bad_type")
    list_type = track("p-list", "Product Viewed", T0 + 2, "poison-list-type")
    list_type["type"] = ["track"]
    add("list-type", CLICKSTREAM, "p-list", js(list_type), "bad_type")
    far = track("p-far", "Product Viewed", T0 + 3, "poison-year-9999")
    far["timestamp"] = "9999-12-31T23:59:59-14:00"
    add("year-9999", CLICKSTREAM, "p-far", js(far), "time_out_of_range")
    add("utf8", CLICKSTREAM, "p-utf8",
        b'{"messageId": "poison-utf8", "type": "track", "userId": "p-\xff\xfe"}', "invalid_json")
    traits = identify("p-deep", "p-deep-anon", T0 + 4, "poison-deep-traits")
    traits["traits"] = {}
    add("deep-traits", IDENTITIES, "p-deep",
        js(traits).replace(b'"traits":{}', b'"traits":' + deep(400)), "too_deep")
    add("not-json", CLICKSTREAM, "p-text", b"poison-not-json: this is no JSON", "invalid_json")
    add("avro", CLICKSTREAM, "p-avro", b"\x00\x00\x00\x00\x07poison-avro\xff\xff", "invalid_json")
    # an alias cycle: B's anonymous id A, then A's anonymous id B (the second one is refused)
    cycle_a, cycle_b = "p-cycle-a", "p-cycle-b"
    first = identify(cycle_b, cycle_a, T0 + 5, "cycle-first")
    back = identify(cycle_a, cycle_b, T0 + 6, "poison-alias-cycle")
    add("alias-cycle", IDENTITIES, cycle_a, js(back), "identity_conflict")

    shopper = "shopper-1"
    live.produce([track("warm-up", "Product Viewed", T0, "warm-0", product_id="p0")])
    viewed = track(cycle_a, "Product Viewed", T0 + 1, "cycle-view", product_id="p1")
    viewed["anonymousId"] = viewed.pop("userId")  # A is anonymous: it merges into B
    live.produce([viewed, first])
    for i, (_, topic, key, value, _) in enumerate(poison):
        # stamped in event order (the worker merges its partitions by record time)
        live.produce_raw(topic, key, value, partition=partition_for(key, PARTITIONS),
                         timestamp_ms=int((T0 + 10 + i) * 1000))
    live.produce([
        track(shopper, "Product Added", T0 + 10 * MIN, "shop-add", product_id="bike-1",
              price=999.0, quantity=1, cart_id="c1"),
        # time passes: other consumers' events carry the stream past the reminder's due time
        track("passer-by", "Product Viewed", T0 + 30 * MIN, "pass-1", product_id="p2"),
        track("passer-by", "Product Viewed", T0 + 60 * MIN, "pass-2", product_id="p2"),
        track("passer-by", "Product Viewed", T0 + 90 * MIN, "pass-3", product_id="p3"),
    ])
    worker = live.start_worker("w1")

    def fired() -> bool:
        return any(
            r["consumer_id"] == shopper and r["campaign"] == "cart-abandonment"
            for r in live.records(TRIGGERS_RETARGETING)
        )

    live.wait_for(
        lambda: fired() and len(live.records(DEAD_LETTERS)) >= len(poison),
        timeout=45, what="the cart reminder and every poison record's dead letter",
    )
    live.poll(1.5)  # nothing more may come
    assert worker.poll() is None, "the worker must stay up"
    dead = live.records(DEAD_LETTERS)
    assert len(dead) == len(poison), [d["reason"] for d in dead]
    for marker, _, _, _, reason in poison:
        [letter] = [d for d in dead if marker in (d["raw"] or "")]
        assert letter["reason"] == reason, (marker, letter)
