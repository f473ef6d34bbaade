"""Fake FeatureViews for the rules tests: a plain one, and one that refuses undeclared access."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.engine.namespace import FEATURES, FUNCTIONS

ALLOWED = frozenset({f.attr for f in FEATURES.values()} | set(FUNCTIONS) | {"trait"})


@dataclass
class FakeView:
    """A FeatureView with every namespace attribute, settable per test."""

    views: int = 5
    cart_adds: int = 1
    orders: int = 3
    revenue: float = 300.0
    avg_order_value: float = 100.0
    discount_share: float = 0.5
    price_band: float | None = 700.0
    top_category: str | None = "road"
    days_since_last_order: float = 50.0
    days_since_last_seen: float = 1.0
    rfm_r: int = 4
    rfm_f: int = 5
    rfm_m: int = 1
    p_alive: float = 0.9
    expected_orders_90d: float = 1.2
    expected_spend: float = 42.0
    clv_365d: float = 80.0
    country: str | None = "DE"
    city: str | None = "Berlin"
    consented: bool = True
    cart_value: float = 0.0
    events: int = 10
    traits: dict[str, Any] = field(default_factory=lambda: {"gender": "female"})
    affinities: dict[str, float] = field(default_factory=lambda: {"road": 0.7})
    brands: dict[str, float] = field(default_factory=dict)
    distance: float | None = 10.0
    members: set[str] = field(default_factory=set)

    def trait(self, name: str) -> Any:
        return self.traits.get(name)

    def affinity(self, category: str) -> float:
        return self.affinities.get(category, 0.0)

    def brand_affinity(self, brand: str) -> float:
        return self.brands.get(brand, 0.0)

    def distance_km(self, lat: float, lon: float) -> Any:  # None: location unknown
        return self.distance

    def in_segment(self, name: str) -> bool:
        return name in self.members


class GuardedView:
    """Records every attribute read and refuses any not declared in namespace.py."""

    def __init__(self, values: dict[str, Any], traits: dict[str, Any], fn_value: Any) -> None:
        object.__setattr__(self, "_state", (values, traits, fn_value, [], [False]))

    def __getattribute__(self, name: str) -> Any:
        values, traits, fn_value, seen, armed = object.__getattribute__(self, "_state")
        if not armed[0]:  # test machinery (repr, hypothesis) may look at the object
            return object.__getattribute__(self, name)
        if name not in ALLOWED:
            raise AssertionError(f"compiled expression touched undeclared attribute {name!r}")
        seen.append(name)
        if name == "trait":
            return lambda key: traits.get(key)
        if name == "in_segment":
            return lambda segment: bool(fn_value)
        if name in FUNCTIONS:
            return lambda *args: fn_value
        return values.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AssertionError("compiled expressions must not write to the view")


def armed(view: GuardedView, on: bool) -> None:
    """Refuse undeclared attributes (on) or behave as a plain object (off)."""
    object.__getattribute__(view, "_state")[4][0] = on


def seen_by(view: GuardedView) -> list[str]:
    """The attributes a GuardedView was asked for."""
    return list(object.__getattribute__(view, "_state")[3])
