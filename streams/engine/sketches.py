"""Small, serializable sketches: a per-consumer price median and population histograms.

Both are log-bucketed counters (the DDSketch idea): relative accuracy is fixed by the bucket
base, merging is adding counts. The population histogram also takes negative updates, which the
library sketches we measured (datasketches KLL, ddsketch) do not: a consumer's frequency moving
from 2 to 3 orders is "remove 2, add 3", and erasure removes a consumer's contribution.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from math import floor, isinf, log
from typing import Any, Final

PRICE_BASE = 1.05  # +-2.5 % relative accuracy
_LOG_PRICE_BASE = math.log(PRICE_BASE)
PRICE_MAX_BUCKETS = 24


def price_bucket(value: float) -> int:
    return math.floor(math.log(value) / _LOG_PRICE_BASE)


def bucket_value(bucket: int, base: float = PRICE_BASE) -> float:
    """Representative value of a log bucket (its geometric middle)."""
    return float(base ** (bucket + 0.5))


def price_add(sketch: dict[int, float], price: float, weight: float = 1.0) -> None:
    """Add `price` (ignored unless > 0) to a price sketch, collapsing the lowest buckets past
    PRICE_MAX_BUCKETS so the sketch stays small whatever the history."""
    if not price > 0.0 or isinf(price):
        return
    b = floor(log(price) / _LOG_PRICE_BASE)  # price_bucket(price), inline: this runs per view
    sketch[b] = sketch.get(b, 0.0) + weight
    if len(sketch) > PRICE_MAX_BUCKETS:
        lo, nxt = sorted(sketch)[:2]
        sketch[nxt] += sketch.pop(lo)


def price_merge(into: dict[int, float], other: dict[int, float]) -> None:
    for b, w in sorted(other.items()):
        into[b] = into.get(b, 0.0) + w
    while len(into) > PRICE_MAX_BUCKETS:
        lo, nxt = sorted(into)[:2]
        into[nxt] += into.pop(lo)


def price_median(sketch: dict[int, float]) -> float:
    """Median of the sketched prices (0 when empty)."""
    total = sum(sketch.values())
    if total <= 0:
        return 0.0
    half = total / 2
    acc = 0.0
    for b in sorted(sketch):
        acc += sketch[b]
        if acc >= half:
            return _median_value(b)
    return _median_value(max(sketch))


_MEDIAN_VALUES: Final[dict[int, float]] = {}


def _median_value(bucket: int) -> float:
    """round(bucket_value(bucket), 2), cached (rounding to digits converts to decimal text)."""
    value = _MEDIAN_VALUES.get(bucket)
    if value is None:
        if len(_MEDIAN_VALUES) >= 4096:
            _MEDIAN_VALUES.clear()
        value = _MEDIAN_VALUES[bucket] = round(bucket_value(bucket), 2)
    return value


class Histogram:
    """Counts of integer buckets with signed updates; quantile cut points cached.

    Cut points are recomputed after the population changed by about 1 % (deterministic: the
    same sequence of updates gives the same cut points). The buckets are also kept in order, so
    that recomputing walks them instead of sorting them.
    """

    __slots__ = ("_cuts", "_keys", "_stale", "counts", "total")

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts or {}
        self.total = sum(self.counts.values())
        self._keys = sorted(self.counts)
        self._cuts: list[int] = []
        self._stale = max(1, self.total)  # (all of the counts are new: compute at the first use)

    def add(self, bucket: int, n: int = 1) -> None:
        counts = self.counts
        before = counts.get(bucket)
        if before is None:
            if n:
                counts[bucket] = n
                insort(self._keys, bucket)
        elif before + n:
            counts[bucket] = before + n
        else:
            del counts[bucket]
            del self._keys[bisect_left(self._keys, bucket)]
        self.total += n
        self._stale += 1

    def merge(self, other: Histogram, sign: int = 1, changes: bool = True) -> None:
        """Add (sign -1: take out) the counts of `other`, each a change toward recomputing the
        cut points; unless `changes`: a restore that the cached cut points already reflect."""
        stale = self._stale
        moved = 0
        for bucket, count in sorted(other.counts.items()):
            self.add(bucket, sign * count)
            moved += abs(count)
        self._stale = stale + moved if changes else stale

    def cuts(self, q: int = 5) -> list[int]:
        """The q-1 bucket boundaries splitting the population into q parts (see `_compute`)."""
        if self._stale and self._stale * 100 >= self.total:
            self._cuts = self._compute(q)
            self._stale = 0
        return self._cuts

    def _compute(self, q: int) -> list[int]:
        """Cut points that never skip a score level on tied data.

        Cut i (1..q-1) is the nearest-rank quantile at i/q: the lowest bucket whose cumulative
        count reaches total * i / q (Hyndman & Fan 1996, "Sample quantiles in statistical
        packages", definition 1: the inverse of the empirical distribution function). A tied
        bucket is never split, so heavy ties make nearest-rank cuts coincide and a score level
        would be empty (CDNOW: 59 % of buyers have one order, the 20 % and 40 % cuts both fall
        on it, nobody scored f = 2). Here a cut that falls on or below the previous one moves to
        the next distinct bucket, and no cut goes so high that fewer distinct buckets remain
        above it than cuts and levels still to place. So with k distinct buckets, scores are
        exactly 1..min(k, q), every level held by at least one bucket, higher bucket never a
        lower score; without ties the cuts are the nearest-rank quantiles unchanged.
        """
        keys = self._keys
        n = len(keys)
        if self.total <= 0 or n == 0:
            return []
        if n <= q:  # one level per distinct bucket (one cut even for one: [] means empty)
            return keys[: max(1, n - 1)]
        counts = self.counts
        cuts: list[int] = []
        acc = 0  # the count of keys[:i]
        i = 0
        last = -1  # the index of the previous cut
        for j in range(1, q):
            t = self.total * j / q
            while acc < t:
                acc += counts[keys[i]]
                i += 1
            x = i - 1
            if x <= last:
                x = last + 1
            top = n - 1 - q + j  # leaves room above for the cuts to come and the top level
            if x > top:
                x = top
            cuts.append(keys[x])
            last = x
        return cuts

    def score(self, bucket: int, q: int = 5) -> int:
        """1..q: which q-quantile `bucket` falls in (higher bucket, higher score); 0 when the
        histogram is empty."""
        cuts = self.cuts(q)
        return 1 + bisect_left(cuts, bucket) if cuts else 0

    def to_json(self) -> list[Any]:
        # the cached cut points and staleness are state too: a restart must score as before
        return [[[b, c] for b, c in sorted(self.counts.items())], self._cuts, self._stale]

    @classmethod
    def from_json(cls, data: list[Any]) -> Histogram:
        counts, cuts, stale = data
        h = cls({int(b): int(c) for b, c in counts})
        h._cuts = [int(c) for c in cuts]
        h._stale = int(stale)
        return h
