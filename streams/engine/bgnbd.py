"""BG/NBD (Fader, Hardie & Lee 2005) closed forms: P(alive) and expected purchases.

Parameters (r, alpha, a, b) are in weeks; the defaults are the published CDNOW fit.
x = repeat purchases, t_x = time of the last purchase and T = age, both since the first one.
"""

from __future__ import annotations

CDNOW = (0.243, 4.414, 0.793, 2.426)
WEEK = 7 * 86400.0


def p_alive(x: int, t_x: float, T: float, params: tuple[float, float, float, float]) -> float:
    """Probability the customer has not churned, given (x, t_x, T) in weeks."""
    r, alpha, a, b = params
    if x <= 0:
        return 1.0
    ratio = (alpha + T) / (alpha + t_x)
    return 1.0 / (1.0 + (a / (b + x - 1)) * ratio ** (r + x))


def hyp2f1(a: float, b: float, c: float, z: float, tol: float = 1e-12, limit: int = 2000) -> float:
    """Gauss hypergeometric 2F1 by its series; fine for 0 <= z < 1 as BG/NBD uses it."""
    term = total = 1.0
    for n in range(limit):
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        if abs(term) < tol * abs(total):
            break
    return total


def expected_purchases(
    t: float, x: int, t_x: float, T: float, params: tuple[float, float, float, float]
) -> float:
    """Expected purchases in the next `t` weeks given (x, t_x, T) in weeks."""
    r, alpha, a, b = params
    if a == 1:
        a = 1 + 1e-9  # the closed form has a removable singularity at a = 1
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    bracket = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, z
    )
    denom = 1.0 + (x > 0) * (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return head * bracket / denom
