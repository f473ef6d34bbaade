"""Nodes that read the plain features (namespace.FEATURES) of a view.

One class per feature, so that compiled code reads the engine's View with a direct call of its
property; any other FeatureView is read through its Python attribute (the second `return`).
"""

from __future__ import annotations

from typing import Any

from streams.engine.rules.nodes import Feature
from streams.engine.view import View


class Views(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.views
        return view.views


class CartAdds(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.cart_adds
        return view.cart_adds


class Orders(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.orders
        return view.orders


class Revenue(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.revenue
        return view.revenue


class AvgOrderValue(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.avg_order_value
        return view.avg_order_value


class DiscountShare(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.discount_share
        return view.discount_share


class PriceBand(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.price_band
        return view.price_band


class TopCategory(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.top_category
        return view.top_category


class DaysSinceLastOrder(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.days_since_last_order
        return view.days_since_last_order


class DaysSinceLastSeen(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.days_since_last_seen
        return view.days_since_last_seen


class RfmR(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.rfm_r
        return view.rfm_r


class RfmF(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.rfm_f
        return view.rfm_f


class RfmM(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.rfm_m
        return view.rfm_m


class PAlive(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.p_alive
        return view.p_alive


class ExpectedOrders90d(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.expected_orders_90d
        return view.expected_orders_90d


class ExpectedSpend(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.expected_spend
        return view.expected_spend


class Clv365d(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.clv_365d
        return view.clv_365d


class Country(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.country
        return view.country


class City(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.city
        return view.city


class Consented(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.consented
        return view.consented


class CartValue(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.cart_value
        return view.cart_value


class Events(Feature):
    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.events
        return view.events


_READERS: dict[str, type[Feature]] = {
    "views": Views,
    "cart_adds": CartAdds,
    "orders": Orders,
    "revenue": Revenue,
    "avg_order_value": AvgOrderValue,
    "discount_share": DiscountShare,
    "price_band": PriceBand,
    "top_category": TopCategory,
    "days_since_last_order": DaysSinceLastOrder,
    "days_since_last_seen": DaysSinceLastSeen,
    "rfm_r": RfmR,
    "rfm_f": RfmF,
    "rfm_m": RfmM,
    "p_alive": PAlive,
    "expected_orders_90d": ExpectedOrders90d,
    "expected_spend": ExpectedSpend,
    "clv_365d": Clv365d,
    "country": Country,
    "city": City,
    "consented": Consented,
    "cart_value": CartValue,
    "events": Events,
}


def feature(attr: str) -> Feature:
    """The node reading feature `attr` (a `namespace.Feature.attr`)."""
    return _READERS.get(attr, Feature)(attr)
