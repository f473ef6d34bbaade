"""The FeatureView rules read: features of one consumer at one instant, computed on demand."""

from __future__ import annotations

import math
from typing import Any

from streams.engine.bgnbd import WEEK, model_inputs
from streams.engine.clv import CustomerModels
from streams.engine.features import haversine_km, top
from streams.engine.population import DAY, Population
from streams.engine.sketches import price_median
from streams.engine.state import ConsumerState

NEVER = math.inf


class View:
    """Features of `state` at event time `now`; see streams/engine/namespace.py for the names.

    `members` is the set of segments the consumer is in as this evaluation goes, so that
    `in_segment()` sees earlier segments of the file as re-evaluated and later ones as before.
    `stamp` changes with every `reset`: the rules' shared sub-expressions (rules.nodes.Memo) keep
    their value for a view until then. A view is for one instant of a consumer whose state does
    not change while the view is in use.
    """

    __slots__ = (
        "_brand_total",
        "_cat_total",
        "_price_band",
        "_rfm_f",
        "_rfm_known",
        "_rfm_m",
        "_rfm_r",
        "members",
        "models",
        "now",
        "population",
        "stamp",
        "state",
    )

    def __init__(
        self,
        state: ConsumerState,
        now: float,
        population: Population,
        models: CustomerModels,
        members: set[str],
    ) -> None:
        self.population = population
        self.models = models
        self.stamp = 0
        self.reset(state, now, members)

    def reset(self, state: ConsumerState, now: float, members: set[str]) -> None:
        """Make this the view of `state` at `now`, forgetting all values computed for the last
        one (the engine reuses one view: setting its fields costs less than making a view)."""
        self.state = state
        self.now = now
        self.members = members
        self.stamp += 1
        self._rfm_known = False
        self._rfm_r = self._rfm_f = self._rfm_m = 0
        # derived values computed at most once per view (a view lives for one evaluation)
        self._price_band: float | None = None
        self._cat_total = -1.0  # (< 0: not summed yet)
        self._brand_total = -1.0

    # plain counters
    @property
    def views(self) -> int:
        return self.state.views

    @property
    def cart_adds(self) -> int:
        return self.state.cart_adds

    @property
    def orders(self) -> int:
        return self.state.orders

    @property
    def events(self) -> int:
        return self.state.events

    @property
    def revenue(self) -> float:
        return self.state.revenue

    @property
    def avg_order_value(self) -> float:
        s = self.state
        return s.revenue / s.orders if s.orders else 0.0

    @property
    def discount_share(self) -> float:
        s = self.state
        return s.discounted_orders / s.orders if s.orders else 0.0

    @property
    def price_band(self) -> float:
        band = self._price_band
        if band is None:
            band = self._price_band = price_median(self.state.price)
        return band

    @property
    def cart_value(self) -> float:
        return sum(self.state.cart.values())

    @property
    def top_category(self) -> str | None:
        return top(self.state.cat_aff)

    @property
    def days_since_last_order(self) -> float:
        lo = self.state.last_order
        return NEVER if lo is None else max(0.0, (self.now - lo) / DAY)

    @property
    def days_since_last_seen(self) -> float:
        return max(0.0, (self.now - self.state.last_seen) / DAY)

    @property
    def country(self) -> str | None:
        return self.state.country

    @property
    def city(self) -> str | None:
        return self.state.city

    @property
    def consented(self) -> bool:
        return self.state.consented

    # population-relative
    # (scores computed once per view, kept as three ints: a tuple would be boxed and unboxed)
    @property
    def rfm_r(self) -> int:
        if not self._rfm_known:
            self._score()
        return self._rfm_r

    @property
    def rfm_f(self) -> int:
        if not self._rfm_known:
            self._score()
        return self._rfm_f

    @property
    def rfm_m(self) -> int:
        if not self._rfm_known:
            self._score()
        return self._rfm_m

    def _score(self) -> None:
        self._rfm_r, self._rfm_f, self._rfm_m = self.population.rfm(self.state)
        self._rfm_known = True

    # customer models: orders of a UTC day are one transaction (x = repeat order days)
    def _xtT(self) -> tuple[int, float, float]:
        s = self.state
        if s.first_order is None or s.last_order is None:
            return 0, 0.0, max(0.0, (self.now - s.first_seen) / WEEK)
        return model_inputs(int(s.order_days[0]), s.first_order, s.last_order, self.now)

    def _repeat_mean(self, x: int) -> float:
        """Mean value of the repeat order days (the first day's orders left out)."""
        s = self.state
        return max(0.0, s.revenue - s.order_days[1]) / x if x > 0 else 0.0

    @property
    def p_alive(self) -> float:
        x, t_x, T = self._xtT()
        return self.models.p_alive(x, t_x, T)

    @property
    def expected_orders_90d(self) -> float:
        x, t_x, T = self._xtT()
        return self.models.expected_orders(90 / 7, x, t_x, T)

    @property
    def expected_spend(self) -> float:
        x = self._xtT()[0]
        return self.models.expected_spend(x, self._repeat_mean(x))

    @property
    def clv_365d(self) -> float:
        x, t_x, T = self._xtT()
        return self.models.clv(x, t_x, T, self._repeat_mean(x))

    # functions
    def trait(self, name: str) -> Any:
        return self.state.traits.get(name)

    def affinity(self, category: str) -> float:
        return self.category_share(category.lower())

    def category_share(self, key: str) -> float:
        """affinity() of a category already in lower case (the rules lower their constants)."""
        scores = self.state.cat_aff
        total = self._cat_total
        if total < 0.0:
            total = self._cat_total = sum(scores.values())
        return scores.get(key, 0.0) / total if total > 0 else 0.0

    def brand_affinity(self, brand: str) -> float:
        return self.brand_share(brand.lower())

    def brand_share(self, key: str) -> float:
        """brand_affinity() of a brand already in lower case."""
        scores = self.state.brand_aff
        total = self._brand_total
        if total < 0.0:
            total = self._brand_total = sum(scores.values())
        return scores.get(key, 0.0) / total if total > 0 else 0.0

    def distance_km(self, lat: float, lon: float) -> float | None:
        s = self.state
        if s.lat is None or s.lon is None:
            return None
        return haversine_km(s.lat, s.lon, lat, lon)

    def in_segment(self, name: str) -> bool:
        return name in self.members
