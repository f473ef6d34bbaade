"""Population statistics of one partition: the RFM histograms every consumer's score uses.

Consumers are spread over partitions by a hash of their id, so each partition is a uniform
sample of the population; live workers and replay compute the same per-partition figures.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Final

import orjson

from streams.engine.sketches import Histogram
from streams.engine.state import ConsumerState

DAY: Final = 86400.0
MONEY_BASE: Final = 1.02
_LOG_MONEY: Final = math.log(MONEY_BASE)


def recency_bucket(last_order: float) -> int:
    return int(last_order // DAY)


def money_bucket(revenue: float) -> int:
    return math.floor(math.log(revenue) / _LOG_MONEY) if revenue > 1 else 0


class Population:
    """Recency (day of last order), frequency (orders) and monetary (revenue) histograms."""

    __slots__ = ("dirty", "frequency", "monetary", "recency")

    def __init__(self) -> None:
        self.recency = Histogram()
        self.frequency = Histogram()
        self.monetary = Histogram()
        self.dirty = False

    def _update(self, s: ConsumerState, sign: int) -> None:
        if s.orders <= 0 or s.last_order is None:
            return
        self.recency.add(recency_bucket(s.last_order), sign)
        self.frequency.add(s.orders, sign)
        self.monetary.add(money_bucket(s.revenue), sign)
        self.dirty = True

    def remove(self, s: ConsumerState) -> None:
        """Take a consumer's contribution out (before it changes, merges away or is erased)."""
        self._update(s, -1)

    def add(self, s: ConsumerState) -> None:
        self._update(s, +1)

    def rfm(self, s: ConsumerState) -> tuple[int, int, int]:
        """Quintile scores 1..5 of a consumer; (0, 0, 0) without orders."""
        orders, last_order = s.orders, s.last_order
        if orders <= 0 or last_order is None:
            return 0, 0, 0
        # Histogram.score() and the bucket functions inline (this runs on every event); all
        # three cuts() are still called, in this order: they may recompute the cut points
        r_cuts = self.recency.cuts()
        f_cuts = self.frequency.cuts()
        m_cuts = self.monetary.cuts()
        revenue = s.revenue
        m_bucket = math.floor(math.log(revenue) / _LOG_MONEY) if revenue > 1 else 0
        return (
            1 + bisect_left(r_cuts, int(last_order // DAY)) if r_cuts else 0,
            1 + bisect_left(f_cuts, orders) if f_cuts else 0,
            1 + bisect_left(m_cuts, m_bucket) if m_cuts else 0,
        )

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [self.recency.to_json(), self.frequency.to_json(), self.monetary.to_json()]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Population:
        r, f, m = orjson.loads(data)
        p = cls()
        p.recency, p.frequency, p.monetary = (
            Histogram.from_json(r),
            Histogram.from_json(f),
            Histogram.from_json(m),
        )
        return p
