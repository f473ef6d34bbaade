"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"): expected order value.

A customer's order values are Gamma(p, nu) with nu ~ Gamma(q, v) across customers; given x
repeat orders of mean value m, nu is Gamma(p x + q, v + x m) and the expected value of the next
order is p (v + x m) / (p x + q - 1), a weighted mean of the population mean p v / (q - 1) and
m. Exact in floating point (no series); needs p x + q > 1.
"""

from __future__ import annotations

CDNOW_SPEND = (6.25, 3.74, 15.44)  # p, q, v of the published CDNOW fit


def expected_spend(x: int, mean: float, params: tuple[float, float, float]) -> float:
    """Expected value of a customer's next order given `x` repeat orders of mean value `mean`
    (x = 0: the population mean). NaN when the model has no finite mean (q <= 1, x = 0)."""
    p, q, v = params
    x = max(x, 0)
    denominator = p * x + q - 1.0
    if denominator <= 0.0:
        return float("nan")
    return p * (v + x * mean) / denominator
