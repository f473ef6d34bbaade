"""Maximum likelihood of BG/NBD, modified BG/NBD and Gamma-Gamma (scipy).

Each log-likelihood is the published closed form in logs (gammaln, logaddexp: no overflow for
any x), summed over the distinct customer summaries with their counts. The optimizer works on
the logs of the parameters (all are positive); the standard errors come from the inverse of
the negative log-likelihood's Hessian in the parameters themselves, by central differences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import gammaln

from streams.fit.history import Customer

Array = NDArray[np.float64]
BGNBD_NAMES = ("r", "alpha", "a", "b")
GAMMA_GAMMA_NAMES = ("p", "q", "v")


class FitError(ValueError):
    """The data cannot be fitted; the message says why."""


@dataclass(frozen=True, slots=True)
class Fit:
    """Fitted parameters (by name), their standard errors, the log-likelihood at the optimum and
    the number of customers fitted."""

    params: dict[str, float]
    errors: dict[str, float]
    log_likelihood: float
    customers: int

    def values(self) -> tuple[float, ...]:
        return tuple(self.params.values())


def bgnbd_log_likelihood(
    params: Sequence[float] | Array, x: Array, t_x: Array, T: Array, modified: bool = False
) -> Array:
    """Per-customer log-likelihood of (x, t_x, T) under BG/NBD (Fader, Hardie & Lee 2005, eq. 6)
    or the modified BG/NBD (Batislam, Denizel & Filiztekin 2007)."""
    r, alpha, a, b = params
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    if modified:
        # B(a, b+x+1)/B(a, b) (alpha+T)^-(r+x) + B(a+1, b+x)/B(a, b) (alpha+t_x)^-(r+x)
        beta = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
        alive = -(r + x) * np.log(alpha + T)
        dead = np.log(a) - np.log(b + x) - (r + x) * np.log(alpha + t_x)
        return head + beta + np.logaddexp(alive, dead)
    beta = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    alive = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        dead = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return head + beta + np.logaddexp(alive, dead)


def gamma_gamma_log_likelihood(params: Sequence[float] | Array, x: Array, m: Array) -> Array:
    """Per-customer log-likelihood of x repeat transactions of mean value m (Fader, Hardie & Lee
    2005, "RFM and CLV"; the density of the mean, up to the same constant as in lifetimes)."""
    p, q, v = params
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


def fit_bgnbd(customers: Sequence[Customer], modified: bool = False) -> Fit:
    """BG/NBD (or modified BG/NBD) by maximum likelihood over every customer."""
    rows = Counter((c.x, c.t_x, c.T) for c in customers)
    data = np.array(list(rows), dtype=float).reshape(-1, 3)
    weights = np.array(list(rows.values()), dtype=float)
    x, t_x, T = data[:, 0], data[:, 1], data[:, 2]

    def total(params: Array) -> float:
        return float(weights @ bgnbd_log_likelihood(params, x, t_x, T, modified))

    return _maximize(total, BGNBD_NAMES, len(customers))


def fit_gamma_gamma(customers: Sequence[Customer]) -> Fit:
    """Gamma-Gamma by maximum likelihood over the repeat buyers with a positive mean value."""
    repeat = [c for c in customers if c.x > 0 and c.mean > 0]
    x = np.array([c.x for c in repeat], dtype=float)
    m = np.array([c.mean for c in repeat], dtype=float)

    def total(params: Array) -> float:
        return float(np.sum(gamma_gamma_log_likelihood(params, x, m)))

    return _maximize(total, GAMMA_GAMMA_NAMES, len(repeat))


def _maximize(
    total: Callable[[Array], float], names: tuple[str, ...], customers: int
) -> Fit:
    def negative(logs: Array) -> float:
        value = total(np.exp(logs))
        return -value if np.isfinite(value) else 1e300

    start = np.zeros(len(names))
    simplex = {"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-10}
    first = minimize(negative, start, method="Nelder-Mead", options=simplex)
    best = minimize(negative, first.x, method="BFGS", options={"gtol": 1e-8})
    logs = best.x if best.fun <= first.fun else first.x
    params = np.exp(logs)
    ll = total(params)
    if not np.isfinite(ll):
        raise FitError("the likelihood has no finite maximum for these data")
    errors = _standard_errors(total, params)
    return Fit(
        {n: float(v) for n, v in zip(names, params, strict=True)},
        {n: float(e) for n, e in zip(names, errors, strict=True)},
        ll,
        customers,
    )


def _standard_errors(total: Callable[[Array], float], params: Array) -> Array:
    """sqrt of the diagonal of the inverse Hessian of -log-likelihood (NaN if not definite)."""
    k = len(params)
    h = 1e-4 * params
    hessian = np.empty((k, k))

    def at(i: int, j: int, di: float, dj: float) -> float:
        p = params.copy()
        p[i] += di * h[i]
        p[j] += dj * h[j]
        return -total(p)

    for i in range(k):
        for j in range(i, k):
            value = at(i, j, 1, 1) - at(i, j, 1, -1) - at(i, j, -1, 1) + at(i, j, -1, -1)
            hessian[i, j] = hessian[j, i] = value / (4 * h[i] * h[j])
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    diagonal = np.diag(covariance)
    return np.where(diagonal > 0, np.sqrt(np.abs(diagonal)), np.nan)
