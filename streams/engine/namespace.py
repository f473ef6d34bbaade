"""The feature namespace a rule expression may read: names, their types, and the functions.

This is the contract between the rules compiler and the feature view. A compiled expression gets
one argument, a `FeatureView`, and reads plain features as attributes (`Feature.attr`), traits
with `view.trait(name)` and calls the functions as methods of the view.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Type = Literal["number", "days", "string", "bool", "any"]
"""`days` is a number of days: it compares with numbers and with duration literals (in days)."""


@dataclass(frozen=True, slots=True)
class Feature:
    name: str  # as written in rules, e.g. "rfm.r"
    attr: str  # attribute of the FeatureView, e.g. "rfm_r"
    type: Type
    doc: str


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[Type, ...]
    returns: Type
    doc: str


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("views", "views", "number", "Product Viewed / Clicked events"),
        Feature("cart_adds", "cart_adds", "number", "Product Added events"),
        Feature("orders", "orders", "number", "completed orders, less refunded/cancelled"),
        Feature("revenue", "revenue", "number", "sum of order revenue"),
        Feature("avg_order_value", "avg_order_value", "number", "revenue / orders (0 if none)"),
        Feature("discount_share", "discount_share", "number", "share of orders with a discount"),
        Feature("price_band", "price_band", "number", "median price of viewed and bought items"),
        Feature("top_category", "top_category", "string", "category of highest affinity"),
        Feature("days_since_last_order", "days_since_last_order", "days", "large if never"),
        Feature("days_since_last_seen", "days_since_last_seen", "days", "since last event"),
        Feature("rfm.r", "rfm_r", "number", "recency quintile 1..5 (0 without orders)"),
        Feature("rfm.f", "rfm_f", "number", "frequency quintile 1..5 (0 without orders)"),
        Feature("rfm.m", "rfm_m", "number", "monetary quintile 1..5 (0 without orders)"),
        Feature("p_alive", "p_alive", "number", "BG/NBD probability the consumer is alive"),
        Feature("expected_orders_90d", "expected_orders_90d", "number", "BG/NBD, next 90 days"),
        Feature("expected_spend", "expected_spend", "number", "Gamma-Gamma next order value"),
        Feature("clv_365d", "clv_365d", "number", "expected revenue, next 365 days"),
        Feature("country", "country", "string", "context.location or traits"),
        Feature("city", "city", "string", "context.location or traits"),
        Feature("consented", "consented", "bool", "marketing consent"),
        Feature("cart_value", "cart_value", "number", "value of items added and not bought"),
        Feature("events", "events", "number", "all events of the consumer"),
    )
}

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("affinity", ("string",), "number", "time-decayed share of views in a category"),
        Function("brand_affinity", ("string",), "number", "time-decayed share of views of a brand"),
        Function("distance_km", ("number", "number"), "number", "from last known location"),
        Function("in_segment", ("string",), "bool", "membership, this evaluation in file order"),
    )
}

TRAITS_PREFIX = "traits."


class FeatureView(Protocol):
    """What a compiled expression reads. Attributes are those named by `Feature.attr`."""

    def trait(self, name: str) -> Any: ...
    def affinity(self, category: str) -> float: ...
    def brand_affinity(self, brand: str) -> float: ...
    def distance_km(self, lat: float, lon: float) -> float | None: ...
    def in_segment(self, name: str) -> bool: ...
