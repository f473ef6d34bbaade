"""BG/NBD, modified BG/NBD and Gamma-Gamma against mpmath at adversarial parameters."""

from __future__ import annotations

import itertools

import mpmath as mp
import pytest

from streams.engine.bgnbd import (
    CDNOW,
    SERIES_MAX_Z,
    alive_expected,
    expected_purchases,
    expected_purchases_modified,
    p_alive,
    p_alive_modified,
)
from streams.engine.clv import CustomerModels
from streams.engine.gammagamma import CDNOW_SPEND, expected_spend

mp.mp.dps = 40
REL = 1e-9
ALPHAS = (0.05, 0.5, 4.414, 100.0)
AS = (0.05, 0.999999, 1.0, 1.000001, 2.5)
BS = (0.5, 0.999999, 1.0, 2.426, 30.0)
XS = (0, 1, 7, 100, 1000)
TS = (0.0, 1e-6, 39.0, 300.0)
HORIZONS = (90 / 7, 365 / 7)


def _closed_form(t, x, t_x, T, params, modified=False):
    """The published closed forms, evaluated by mpmath at 40 digits (a = 1 shifted by 1e-25)."""
    r, alpha, a, b = (mp.mpf(v) for v in params)
    t, t_x, T = mp.mpf(t), mp.mpf(t_x), mp.mpf(T)
    if a == 1:
        a += mp.mpf("1e-25")
    odds = ((alpha + T) / (alpha + t_x)) ** (r + x)
    if modified:
        alive, beta = 1 / (1 + a / (b + x) * odds), b + x + 1
    else:
        alive, beta = (1 if x == 0 else 1 / (1 + a / (b + x - 1) * odds)), b + x
    c = a + beta - 1
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * mp.hyp2f1(r + x, beta, c, z)
    return alive * c / (a - 1) * bracket, alive


def _close(value: float, reference) -> bool:
    if abs(reference) < mp.mpf("1e-290"):  # below the float range: 0 is right
        return abs(value) < 1e-280
    return abs(value - reference) <= REL * abs(reference)


def _grid():
    for i, (alpha, a, b, x, T) in enumerate(itertools.product(ALPHAS, AS, BS, XS, TS)):
        r = (0.243, 2.0, 0.05)[i % 3]
        yield (HORIZONS[i % 2], x, T * (i % 4) / 4, T, (r, alpha, a, b))


def test_expected_purchases_match_mpmath_over_the_whole_grid():
    bad: list[tuple] = []
    for t, x, t_x, T, params in _grid():
        reference, alive = _closed_form(t, x, t_x, T, params)
        value = expected_purchases(t, x, t_x, T, params)
        if not _close(value, reference):
            bad.append((t, x, t_x, T, params, value, float(reference)))
        if not _close(p_alive(x, t_x, T, params), alive):
            bad.append(("p_alive", x, t_x, T, params))
    assert bad == []


def test_modified_bgnbd_matches_mpmath_over_the_whole_grid():
    bad: list[tuple] = []
    for t, x, t_x, T, params in _grid():
        reference, alive = _closed_form(t, x, t_x, T, params, modified=True)
        if not _close(expected_purchases_modified(t, x, t_x, T, params), reference):
            bad.append((t, x, t_x, T, params))
        if not _close(p_alive_modified(x, t_x, T, params), alive):
            bad.append(("p_alive", x, t_x, T, params))
    assert bad == []


@pytest.mark.parametrize(("a", "b"), [(2.2e7, 1.26e8), (1e3, 1e4)])
def test_huge_beta_parameters_a_fit_can_end_at_are_accurate(a, b):
    # mpmath's 2F1 does not converge here: the reference integrates over p ~ Beta(a, b + x)
    # (in u = logit p) the expected purchases of an alive customer, (1 - (1 + p s)^-n) / p
    r, alpha, x, T, t = 0.5, 1.16, 3, 5.0, 365 / 7
    s, n, beta = mp.mpf(t) / (alpha + T), mp.mpf(r + x), mp.mpf(b + x)
    log_b = mp.loggamma(a) + mp.loggamma(beta) - mp.loggamma(a + beta)

    def integrand(u):
        p = 1 / (1 + mp.exp(-u))
        density = mp.exp(a * mp.log(p) + beta * mp.log(1 - p) - log_b)
        return density * -mp.expm1(-n * mp.log1p(p * s)) / p

    mode, width = mp.log(a / beta), mp.sqrt(1 / mp.mpf(a) + 1 / beta)
    cuts = [mode + width * k for k in (-40, -10, -4, -2, -1, 0, 1, 2, 4, 10, 40)]
    reference = mp.quad(integrand, [-mp.inf, *cuts, mp.inf])
    assert _close(alive_expected(float(s), float(n), a, float(beta)), reference)


def test_the_series_and_the_quadrature_agree_where_they_meet():
    # just below and above the switch, both ways of computing give the same number
    for n, a, beta in ((0.243, 0.793, 2.426), (100.2, 1.0, 101.0), (5.0, 0.05, 0.5)):
        s = SERIES_MAX_Z / (1 - SERIES_MAX_Z)
        below = alive_expected(s * 0.999999, n, a, beta)
        above = alive_expected(s * 1.000001, n, a, beta)
        assert above == pytest.approx(below, rel=1e-5)


def test_a_hundred_orders_at_age_zero_no_longer_give_a_negative_expectation():
    # the case of the issue: alpha 0.5, 100 orders (99 repeat), T 0; the truncated series gave -499
    params = (0.243, 0.5, 0.793, 2.426)
    value = expected_purchases(90 / 7, 99, 0.0, 0.0, params)
    assert value == pytest.approx(float(_closed_form(90 / 7, 99, 0.0, 0.0, params)[0]), rel=REL)
    assert round(value) == 469


def test_a_equal_to_one_is_an_ordinary_point():
    below, at, above = (
        expected_purchases(13, 3, 10, 20, (0.5, 2.0, a, 2.0)) for a in (1 - 1e-9, 1.0, 1 + 1e-9)
    )
    assert at == pytest.approx(below, rel=1e-8) and at == pytest.approx(above, rel=1e-8)


def test_the_published_cdnow_example():
    # Fader, Hardie & Lee (2005): x = 2, t_x = 30.43, T = 38.86, next 39 weeks -> 1.226
    assert expected_purchases(39, 2, 30.43, 38.86, CDNOW) == pytest.approx(1.226, abs=1e-3)
    assert p_alive(0, 0, 10, CDNOW) == 1.0
    assert p_alive(5, 30, 32, CDNOW) > p_alive(5, 10, 32, CDNOW)
    assert expected_purchases(13, 0, 0, 1, CDNOW) > expected_purchases(13, 0, 0, 50, CDNOW)
    assert expected_purchases(0, 3, 1, 2, CDNOW) == 0.0


def test_p_alive_never_overflows():
    assert p_alive(1000, 0.0, 1e6, (0.243, 0.05, 0.793, 2.426)) == 0.0
    assert p_alive(1000, 1e6, 1e6, (0.243, 0.05, 0.793, 2.426)) > 0.99


@pytest.mark.parametrize("x", [0, 1, 3, 1000])
@pytest.mark.parametrize("params", [(6.25, 3.74, 15.44), (0.5, 1.01, 100.0), (100.0, 50.0, 0.01)])
def test_expected_spend_is_the_posterior_mean_at_40_digits(x, params):
    # nu | data ~ Gamma(p x + q, v + x m), and E[p / nu] = p (v + x m) / (p x + q - 1)
    p, q, v = (mp.mpf(a) for a in params)
    mean = mp.mpf(35.5)
    shape, rate = p * x + q, v + x * mean
    reference = p * rate * mp.gamma(shape - 1) / mp.gamma(shape)
    assert _close(expected_spend(x, 35.5, params), reference)


def test_expected_spend_without_a_finite_mean_is_nan():
    value = expected_spend(0, 0.0, (1.0, 0.8, 10.0))
    assert value != value


def test_clv_is_a_year_of_expected_orders_times_expected_spend_discounted_when_asked():
    plain = CustomerModels()
    undiscounted = plain.clv(3, 20.0, 30.0, 40.0)
    expected = expected_purchases(365 / 7, 3, 20.0, 30.0, CDNOW) * expected_spend(
        3, 40.0, CDNOW_SPEND
    )
    assert undiscounted == pytest.approx(expected, rel=1e-12)
    discounted = CustomerModels(discount_rate=0.1).clv(3, 20.0, 30.0, 40.0)
    assert undiscounted / 1.1 < discounted < undiscounted
