"""CampaignResults: arms, conversions joined to triggers, closed windows, merging."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.measure.results import FIGURES, CampaignResults


def trig(tid: str, holdout: bool = False, campaign: str = "cart", offer: str = "free-shipping",
         until: str = "2024-01-08T00:00:00.000Z") -> dict[str, Any]:
    return {"trigger_id": tid, "campaign": campaign, "kind": "retargeting", "offer": offer,
            "consumer_id": "c-" + tid, "holdout": holdout, "fired_at": "2024-01-01T00:00:00.000Z",
            "attribution_until": until}


def conv(tid: str, revenue: float, order: str = "o1", at: str = "2024-01-02T00:00:00.000Z",
         holdout: bool = False) -> dict[str, Any]:
    return {"trigger_id": tid, "campaign": "cart", "kind": "retargeting", "offer": "free-shipping",
            "consumer_id": "c-" + tid, "holdout": holdout, "fired_at": "2024-01-01T00:00:00.000Z",
            "converted_at": at, "order_id": order, "revenue": revenue}


def test_a_trigger_with_two_orders_converts_once_and_earns_both_revenues():
    r = CampaignResults()
    for tid in ("a", "b"):
        r.add_trigger(trig(tid))
    r.add_trigger(trig("h", holdout=True))
    r.add_conversion(conv("a", 10.0, "o1"))
    r.add_conversion(conv("a", 5.0, "o2"))
    c = r.report()["cart"]
    assert (c["treated"], c["holdout"], c["converted_treated"], c["converted_holdout"]) == (
        2, 1, 1, 0)
    assert c["conversion_rate_treated"] == 0.5
    assert c["conversion_rate_holdout"] == 0.0
    assert c["revenue_per_trigger_treated"] == 7.5
    assert c["revenue_per_trigger_holdout"] == 0.0
    assert c["lift"] == 0.5
    assert c["relative_lift"] is None
    assert c["incremental_revenue"] == 15.0
    assert c["lift_ci95"][0] <= 0.5 <= c["lift_ci95"][1]
    assert list(c) == [*FIGURES, "offers"]
    assert c["offers"]["free-shipping"] == {k: v for k, v in c.items() if k != "offers"}


def test_records_seen_twice_count_once_and_conversions_may_come_before_their_trigger():
    r = CampaignResults()
    r.add_conversion(conv("a", 10.0))
    r.add_conversion(conv("a", 10.0))
    r.add_trigger(trig("a"))
    r.add_trigger(trig("a"))
    c = r.report()["cart"]
    assert (c["treated"], c["converted_treated"], c["revenue_per_trigger_treated"]) == (1, 1, 10.0)


def test_an_empty_arm_gives_none_for_rates_lift_and_incremental_revenue():
    r = CampaignResults()
    r.add_trigger(trig("a"))
    c = r.report()["cart"]
    assert c["holdout"] == 0 and c["conversion_rate_holdout"] is None
    for key in ("lift", "lift_ci95", "relative_lift", "p_value", "incremental_revenue"):
        assert c[key] is None


def test_report_until_counts_only_triggers_whose_window_closed_by_then():
    r = CampaignResults()
    r.add_trigger(trig("a", until="2024-01-08T00:00:00.000Z"))
    r.add_trigger(trig("b", until="2024-01-09T00:00:00.000Z"))
    assert r.report(datetime(2024, 1, 8, tzinfo=UTC))["cart"]["treated"] == 1  # edge: closed
    assert r.report(datetime(2024, 1, 7, tzinfo=UTC)) == {}
    assert r.report(datetime(2024, 1, 8, 12))["cart"]["treated"] == 1  # naive is UTC
    assert r.report()["cart"]["treated"] == 2


def test_offers_are_reported_within_their_campaign():
    r = CampaignResults()
    r.add_trigger(trig("a", offer="vip-20", campaign="winback"))
    r.add_trigger(trig("b", offer="comeback-10", campaign="winback", holdout=True))
    r.add_trigger(trig("c"))
    rep = r.report()
    assert list(rep) == ["cart", "winback"]
    assert sorted(rep["winback"]["offers"]) == ["comeback-10", "vip-20"]
    assert rep["winback"]["offers"]["vip-20"]["treated"] == 1
    assert rep["winback"]["offers"]["comeback-10"]["holdout"] == 1


def test_merged_results_equal_one_results_fed_everything():
    parts = [CampaignResults(), CampaignResults()]
    whole = CampaignResults()
    for i, tid in enumerate("abcdef"):
        for r in (parts[i % 2], whole):
            r.add_trigger(trig(tid, holdout=i % 3 == 0))
            if i % 2:
                r.add_conversion(conv(tid, 1.5 * i))
    parts[0].merge(parts[1])
    assert parts[0].report() == whole.report()


def test_bad_revenue_counts_as_zero():
    r = CampaignResults()
    r.add_trigger(trig("a"))
    r.add_conversion({**conv("a", 0.0), "revenue": "lots"})
    assert r.report()["cart"]["revenue_per_trigger_treated"] == pytest.approx(0.0)
    assert r.report()["cart"]["converted_treated"] == 1
