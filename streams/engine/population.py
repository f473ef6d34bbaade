"""Population statistics: the RFM histograms every consumer's score uses.

Each partition keeps the histograms of its own buyers (stored with its state, so a partition can
move between workers), and scores against its `scope`: the histograms of every partition the
process holds, summed (`Population.join`; the partition runtime joins all its partitions). So
replay, and a worker holding all partitions, score against the whole population; a worker
holding some of the partitions scores against those (consumers are spread over partitions by a
hash of their id, so that is a uniform sample of the population). An engine alone scores
against its own partition.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any, Final

import orjson

from streams.engine import jsonbytes
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
    """Recency (day of last order), frequency (orders) and monetary (revenue) histograms.

    `scope` is the population the scores are against: this one, or the sum of the partitions
    joined to it. Its cut points (cached, recomputed after about 1 % of changes) are stored
    with every member partition, so that a restart scores as before.
    """

    __slots__ = ("dirty", "frequency", "members", "monetary", "recency", "restored", "scope")

    def __init__(self) -> None:
        self.recency = Histogram()
        self.frequency = Histogram()
        self.monetary = Histogram()
        self.dirty = False
        self.scope: Population = self
        self.members: list[Population] = []
        #: the scope's cached cut points as stored with this partition (restored by `join`)
        self.restored: list[Any] | None = None

    def _update(self, s: ConsumerState, sign: int) -> None:
        if s.orders <= 0 or s.last_order is None:
            return
        r, f, m = recency_bucket(s.last_order), s.orders, money_bucket(s.revenue)
        self.recency.add(r, sign)
        self.frequency.add(f, sign)
        self.monetary.add(m, sign)
        self.dirty = True
        scope = self.scope
        if scope is not self:
            scope.recency.add(r, sign)
            scope.frequency.add(f, sign)
            scope.monetary.add(m, sign)
            for member in scope.members:  # (each stores the scope's changed cut cache)
                member.dirty = True

    def remove(self, s: ConsumerState) -> None:
        """Take a consumer's contribution out (before it changes, merges away or is erased)."""
        self._update(s, -1)

    def add(self, s: ConsumerState) -> None:
        self._update(s, +1)

    # the scope
    def join(self, part: Population) -> None:
        """Score `part` (a partition's population) against this one, to which its counts are
        added. The first part restored with a cut cache of its scope brings it; the counts of
        the parts stored with that same cache (one checkpoint) are then no change: a restart
        scores as before. Other parts' counts count toward recomputing the cut points."""
        cache = part.restored
        part.restored = None
        if cache is not None and self.restored is None:
            self.restored = cache
            for h, (cuts, stale) in zip(self._hists(), cache, strict=True):
                h._cuts = [int(c) for c in cuts]
                h._stale = int(stale)
        known = cache is not None and cache == self.restored
        for mine, theirs in zip(self._hists(), part._hists(), strict=True):
            mine.merge(theirs, 1, not known)
        self.members.append(part)
        part.scope = self

    def leave(self, part: Population) -> None:
        """Stop scoring `part` against this one (its partition moved away): its counts out."""
        if part.scope is not self:
            return
        for mine, theirs in zip(self._hists(), part._hists(), strict=True):
            mine.merge(theirs, -1)
        self.members.remove(part)
        part.scope = part

    def _hists(self) -> tuple[Histogram, Histogram, Histogram]:
        return self.recency, self.frequency, self.monetary

    def cut_caches(self) -> list[tuple[list[int], int]]:
        """The cut point caches of this population's histograms and its scope's (what `remove`
        and `add` move besides the counts), for `restore_cut_caches`."""
        return [(h._cuts, h._stale) for h in (*self._hists(), *self.scope._hists())]

    def restore_cut_caches(self, caches: list[tuple[list[int], int]]) -> None:
        """Put back the caches `cut_caches` gave, once the counts are back as they were then."""
        for h, (cuts, stale) in zip((*self._hists(), *self.scope._hists()), caches, strict=True):
            h._cuts = cuts
            h._stale = stale

    def rfm(self, s: ConsumerState) -> tuple[int, int, int]:
        """Quintile scores 1..5 of a consumer against the scope (ties: Histogram._compute);
        (0, 0, 0) without orders."""
        orders, last_order = s.orders, s.last_order
        if orders <= 0 or last_order is None:
            return 0, 0, 0
        # Histogram.score() and the bucket functions inline (this runs on every event); all
        # three cuts() are still called, in this order: they may recompute the cut points
        scope = self.scope
        r_cuts = scope.recency.cuts()
        f_cuts = scope.frequency.cuts()
        m_cuts = scope.monetary.cuts()
        revenue = s.revenue
        m_bucket = math.floor(math.log(revenue) / _LOG_MONEY) if revenue > 1 else 0
        return (
            1 + bisect_left(r_cuts, int(last_order // DAY)) if r_cuts else 0,
            1 + bisect_left(f_cuts, orders) if f_cuts else 0,
            1 + bisect_left(m_cuts, m_bucket) if m_cuts else 0,
        )

    def to_bytes(self) -> bytes:
        hists = [self.recency.to_json(), self.frequency.to_json(), self.monetary.to_json()]
        scope = self.scope
        if scope is not self:
            hists.append([[h._cuts, h._stale] for h in scope._hists()])
        return jsonbytes.dumps(hists)

    @classmethod
    def from_bytes(cls, data: bytes) -> Population:
        parts = orjson.loads(data)
        p = cls()
        p.recency, p.frequency, p.monetary = (
            Histogram.from_json(parts[0]),
            Histogram.from_json(parts[1]),
            Histogram.from_json(parts[2]),
        )
        if len(parts) > 3:
            p.restored = parts[3]
        return p
