"""Campaign results of the documented shape (`streams.measure.results.CampaignResults.report()`),
built by hand so the report's tests do not depend on the attribution code."""

from __future__ import annotations

from typing import Any


def arm_figures(treated: int, holdout: int, conv_t: int, conv_h: int) -> dict[str, Any]:
    rate_t, rate_h = conv_t / treated, conv_h / holdout
    return {
        "treated": treated, "holdout": holdout,
        "converted_treated": conv_t, "converted_holdout": conv_h,
        "conversion_rate_treated": rate_t, "conversion_rate_holdout": rate_h,
        "revenue_per_trigger_treated": 12.5, "revenue_per_trigger_holdout": 10.0,
        "lift": rate_t - rate_h, "lift_ci95": [rate_t - rate_h - 0.05, rate_t - rate_h + 0.05],
        "relative_lift": (rate_t - rate_h) / rate_h, "p_value": 0.0004,
        "incremental_revenue": 2.5 * treated,
    }


def campaigns() -> dict[str, Any]:
    """A `report["campaigns"]` of the documented shape (streams.measure.results)."""
    winback = arm_figures(200, 40, 50, 6)
    winback["offers"] = {"vip-20": arm_figures(50, 10, 20, 2),
                         "comeback-10": arm_figures(150, 30, 30, 4)}
    cart = arm_figures(100, 20, 30, 4)
    cart["offers"] = {"free-shipping": arm_figures(100, 20, 30, 4)}
    empty: dict[str, Any] = {k: None for k in arm_figures(1, 1, 0, 1)}
    empty.update(treated=3, holdout=0, converted_treated=1, converted_holdout=0, offers={})
    return {"winback-60d": winback, "cart-abandonment": cart, "new-campaign": empty}
