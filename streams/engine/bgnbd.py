"""BG/NBD (Fader, Hardie & Lee 2005) and modified BG/NBD (Batislam et al. 2007) per customer.

Parameters (r, alpha, a, b) are in weeks; the defaults are the published CDNOW fit.
x = repeat purchase days, t_x = time of the last one and T = age, both since the first purchase
day, in weeks.

No truncated hypergeometric series: the expectation of an alive customer is
E_p[(1 - (1 + p s)^-(r+x)) / p] with p ~ Beta(a, b+x) (b+x+1 for the modified model) and
s = t / (alpha + T), which is the closed form's (a+b+x-1)/(a-1) (1 - ... 2F1(...)) after
integrating the purchase rate out. It is computed either by the series of
2F1(a-1, a+b-r-1; a+b+x-1; z), z = s / (1 + s) (Pfaff's transformation twice; a-1 factored
out, so a = 1 is not special), when that converges fast, or by double-exponential quadrature
over the logit of p, which converges for every parameter. Checked against mpmath to 1e-9.
"""

from __future__ import annotations

from math import cosh, exp, expm1, log, log1p, sinh, sqrt

CDNOW = (0.243, 4.414, 0.793, 2.426)
WEEK = 7 * 86400.0
#: the series is used up to this z (its cost grows as 1 / (1 - z)) and this a (its terms grow
#: as long as k < a z / (1 - z)); elsewhere the quadrature
SERIES_MAX_Z = 0.9
SERIES_MAX_A = 20.0
_TOL = 1e-15


def p_alive(x: int, t_x: float, T: float, params: tuple[float, float, float, float]) -> float:
    """Probability the customer has not churned, given (x, t_x, T) in weeks (BG/NBD)."""
    if x <= 0:
        return 1.0
    r, alpha, a, b = params
    return _alive(log(a / (b + x - 1)) + (r + x) * log1p((T - t_x) / (alpha + t_x)))


def p_alive_modified(
    x: int, t_x: float, T: float, params: tuple[float, float, float, float]
) -> float:
    """P(alive) under the modified BG/NBD, where a one-time buyer may also have dropped out."""
    r, alpha, a, b = params
    x = max(x, 0)
    return _alive(log(a / (b + x)) + (r + x) * log1p((T - t_x) / (alpha + t_x)))


def _alive(log_odds_dead: float) -> float:
    """1 / (1 + exp(e)) without overflow."""
    if log_odds_dead > 0.0:
        e = exp(-log_odds_dead)
        return e / (1.0 + e)
    return 1.0 / (1.0 + exp(log_odds_dead))


def expected_purchases(
    t: float, x: int, t_x: float, T: float, params: tuple[float, float, float, float]
) -> float:
    """Expected purchases in the next `t` weeks given (x, t_x, T) in weeks (BG/NBD)."""
    x = max(x, 0)
    r, alpha, a, b = params
    return p_alive(x, t_x, T, params) * alive_expected(t / (alpha + T), r + x, a, b + x)


def expected_purchases_modified(
    t: float, x: int, t_x: float, T: float, params: tuple[float, float, float, float]
) -> float:
    """Expected purchases in the next `t` weeks under the modified BG/NBD."""
    x = max(x, 0)
    r, alpha, a, b = params
    return p_alive_modified(x, t_x, T, params) * alive_expected(
        t / (alpha + T), r + x, a, b + x + 1
    )


def alive_expected(s: float, n: float, a: float, beta: float) -> float:
    """E_p[(1 - (1 + p s)^-n) / p] for p ~ Beta(a, beta): the expected purchases of an alive
    customer whose purchase rate is Gamma(n, alpha + T), over t = s (alpha + T)."""
    if s <= 0.0:
        return 0.0
    if s / (1.0 + s) <= SERIES_MAX_Z and a <= SERIES_MAX_A:
        return _by_series(s, n, a, beta)
    return _by_quadrature(s, n, a, beta)


def _by_series(s: float, n: float, a: float, beta: float) -> float:
    # (a+beta-1)/(a-1) (1 - (1-z)^(a-1) 2F1(a-1, B; C; z)), B = a+beta-n-1, C = a+beta-1;
    # with 2F1 = 1 + (a-1) S, the bracket over (a-1) is -expm1(A L)/A - e^(A L) S
    A = a - 1.0
    B = beta - n + A
    C = beta + A
    z = s / (1.0 + s)
    L = -log1p(s)  # ln(1 - z)
    AL = A * L
    head = L if AL == 0.0 else expm1(AL) / A
    term = B * z  # C times the k = 1 term of S, (A+1)_0 (B)_1 / ((C)_1 1!) z (C may be 0)
    total = term
    k = 1
    while k < 100000:
        term *= (a + k - 1.0) * (B + k) / ((C + k) * (k + 1.0)) * z
        total += term
        k += 1
        if abs(term) <= _TOL * abs(total) and k > 2:
            break
    return -C * head - exp(AL) * total


def _by_quadrature(s: float, n: float, a: float, beta: float) -> float:
    # trapezoid rule after u = logit(p) = c + w sinh(v): the Beta density in u is a smooth bell
    # with exponential tails, which sinh turns into doubly exponential ones. The density is
    # taken relative to its value at c (no Beta function: lgamma of large arguments would cost
    # digits) and the integral divided by the density's own integral on the same nodes.
    w = sqrt(1.0 / a + 1.0 / beta)
    pc = a / (a + beta)
    qc = beta / (a + beta)
    h = 0.5
    num = _g(pc, s, n) * w
    den = w
    more = _sweep(0.0, h, s, n, a, beta, pc, qc, w)
    num += more[0]
    den += more[1]
    estimate = num / den
    while h > 1e-3:
        h /= 2.0
        more = _sweep(h, 2.0 * h, s, n, a, beta, pc, qc, w)
        num += more[0]
        den += more[1]
        better = num / den
        # the error of the trapezoid rule after a double-exponential map falls about as the
        # square of the last change: a change of 1e-9 leaves far less than 1e-12
        if abs(better - estimate) <= 1e-9 * abs(better):
            return better
        estimate = better
    return estimate


def _sweep(
    start: float,
    step: float,
    s: float,
    n: float,
    a: float,
    beta: float,
    pc: float,
    qc: float,
    w: float,
) -> tuple[float, float]:
    """Sums of g x density and of the density over v = ±(start + k step), k >= 0 (v = 0
    excluded), both ways until the terms no longer matter."""
    num = 0.0
    den = 0.0
    for sign in (1.0, -1.0):
        v = start if start > 0.0 else step
        while v < 8.0:
            sv = sign * v
            d = w * sinh(sv)  # u - c
            dlp = -_log_mix(qc, pc, -d)  # ln p - ln pc
            density = exp(a * dlp - beta * _log_mix(pc, qc, d)) * w * cosh(sv)
            num += density * _g(pc * exp(dlp), s, n)
            den += density
            if density <= 1e-18 * den and v > 1.0:
                break
            v += step
    return num, den


def _log_mix(k: float, kc: float, d: float) -> float:
    """ln(kc + k e^d) for k + kc = 1, without cancellation."""
    if d > 0.0:
        y = kc * expm1(-d)
        return d + (log1p(y) if y > -0.5 else log(k + kc * exp(-d)))
    y = k * expm1(d)
    return log1p(y) if y > -0.5 else log(kc + k * exp(d))


def _g(p: float, s: float, n: float) -> float:
    """(1 - (1 + p s)^-n) / p, the expected purchases of an alive customer of dropout p."""
    ps = p * s
    return -expm1(-n * log1p(ps)) / p if ps > 1e-300 else n * s

DAY = 86400.0


def order_day(t: float) -> int:
    """The UTC day (days since the epoch) of an order at `t`: orders of one consumer on one day
    are one transaction of the models, as in the literature."""
    return int(t // DAY)


def model_inputs(
    days: int, first_order: float, last_order: float, now: float
) -> tuple[int, float, float]:
    """(x, t_x, T) in weeks of a consumer with orders on `days` distinct UTC days, the first and
    last at `first_order` and `last_order`, seen at `now`: x = days - 1, t_x between the first
    and the last order day, T from the start of the first order day to `now`."""
    start = order_day(first_order) * DAY
    return (
        max(0, days - 1),
        (order_day(last_order) * DAY - start) / WEEK,
        max(0.0, now - start) / WEEK,
    )
