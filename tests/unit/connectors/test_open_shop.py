"""The demo's open shop: a steady event rate, and offers that work only when delivered."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sources.open_shop import OpenShop, iso_seconds
from streams.engine.events import iso

START = 1_767_225_600.0  # 2026-01-01
DAY = 86400.0


def _per_window(shop: OpenShop, windows: int, days: float) -> list[int]:
    counts = []
    for i in range(windows):
        counts.append(len(shop.until(START + (i + 1) * days * DAY)))
    return counts


@pytest.mark.slow
def test_the_event_rate_of_the_tenth_demo_minute_is_within_20_percent_of_the_first() -> None:
    # a demo minute is 120 simulated days at the default speed
    counts = _per_window(OpenShop(250, seed=1, start=START), 10, 120.0)
    assert abs(counts[-1] - counts[0]) <= 0.2 * counts[0], counts


def test_new_shoppers_arrive_as_others_lapse() -> None:
    shop = OpenShop(250, seed=4, start=START)
    shop.until(START + 300 * DAY)
    assert shop.stats["arrived"] > 500
    assert 190 <= shop.active <= 310


def test_events_come_in_time_order_and_the_same_seed_gives_the_same_events() -> None:
    a = OpenShop(50, seed=9, start=START)
    b = OpenShop(50, seed=9, start=START)
    evs = a.until(START + 30 * DAY)
    assert evs == b.until(START + 30 * DAY)
    times = [iso_seconds(e["timestamp"]) or 0.0 for e in evs]
    assert times == sorted(times) and min(times) >= START


def _trigger(shop: OpenShop, campaign: str, holdout: bool, fired: float) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "consumer_id": shop.people[0].anonymous_id,
        "holdout": holdout,
        "fired_at": iso(fired),
        "attribution_until": iso(fired + 7 * DAY),
    }


def _orders(events: list[dict[str, Any]]) -> list[float]:
    return [
        t
        for e in events
        if e.get("event") == "Order Completed" and (t := iso_seconds(e["timestamp"])) is not None
    ]


def test_a_delivered_offer_with_full_uplift_brings_an_order_within_its_window() -> None:
    shop = OpenShop(5, seed=1, start=START, uplift={"cart": 1.0})
    fired = START + 2 * DAY
    shop.until(fired)
    assert shop.deliver(_trigger(shop, "cart", False, fired))
    me = shop.people[0]
    window = [
        e for e in shop.until(fired + 7 * DAY) if e["anonymousId"] == me.anonymous_id
    ]
    assert any(fired < t <= fired + 7 * DAY for t in _orders(window))


def test_a_held_out_trigger_or_a_campaign_without_uplift_changes_nothing() -> None:
    shop = OpenShop(5, seed=1, start=START, uplift={"cart": 1.0, "browse": 0.0})
    fired = START + 2 * DAY
    shop.until(fired)
    assert not shop.deliver(_trigger(shop, "cart", True, fired))
    assert not shop.deliver(_trigger(shop, "browse", False, fired))
    assert not shop.deliver(_trigger(shop, "unknown", False, fired))
    assert shop.stats["persuaded"] == 0


def test_an_offer_read_after_its_window_closed_is_missed() -> None:
    shop = OpenShop(5, seed=1, start=START, uplift={"cart": 1.0})
    fired = START + 2 * DAY
    shop.until(fired + 8 * DAY)
    assert not shop.deliver(_trigger(shop, "cart", False, fired))
    assert shop.stats["missed"] == 1
