"""The statistics of a campaign's lift: a difference of two proportions (treated - holdout).

- Interval: Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the Wilson
  score interval of each arm. Unlike the Wald interval it keeps its coverage near the nominal
  level for small arms and for rates near 0 or 1, and never leaves [-1, 1].
- p-value: the two-sided two-proportion z-test with the pooled rate (the same p-value as
  Pearson's chi-squared test of the 2x2 table without continuity correction).

Only the normal distribution is needed: `math.erfc` and `statistics.NormalDist` give it, so the
worker and the console need no scipy (the tests check these figures against scipy's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

#: the two-sided 95% normal quantile (1.959963984540054)
Z95 = NormalDist().inv_cdf(0.975)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n` (n > 0)."""
    p = successes / n
    z2 = z * z
    centre = (successes + z2 / 2) / (n + z2)
    half = z * math.sqrt(n * p * (1 - p) + z2 / 4) / (n + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_ci(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (p1 = x1/n1, p2 = x2/n2; both n > 0)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, low), min(1.0, high)


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of p1 = p2 (both n > 0); 1.0 when
    the pooled rate is 0 or 1 (the arms cannot differ)."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0.0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


@dataclass(frozen=True, slots=True)
class Lift:
    """Treated against holdout: absolute lift (p1 - p2), its 95% interval, relative lift
    (lift / p2; None when p2 is 0) and the p-value."""

    lift: float
    ci95: tuple[float, float]
    relative: float | None
    p_value: float


def lift(x1: int, n1: int, x2: int, n2: int) -> Lift | None:
    """The lift of treated (x1 of n1 converted) over holdout (x2 of n2); None if an arm is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    return Lift(d, newcombe_ci(x1, n1, x2, n2), d / p2 if p2 > 0 else None,
                two_proportion_p_value(x1, n1, x2, n2))
