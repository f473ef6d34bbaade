"""Crossing instants: the first millisecond at which a clock comparison flips, exactly as the
view computes the clock."""

from __future__ import annotations

import math
import random

from streams.engine.rules import loads_rules
from streams.engine.timeplan import (
    INF,
    AllOf,
    Cadence,
    Crossing,
    Earliest,
    first_above,
    first_at_least,
    plan_of,
)
from tests.unit.engine.helpers import T0


def days(t: float, anchor: float) -> float:
    return max(0.0, (t - anchor) / 86400.0)  # as View.days_since_last_seen


def before(t: float) -> float:
    return (round(t * 1000) - 1) / 1000


def test_crossings_are_the_first_millisecond_where_the_comparison_holds():
    rng = random.Random(7)
    for _ in range(2000):
        anchor = T0 + rng.randrange(10**9) / 1e6  # microsecond timestamps
        c = rng.choice([rng.uniform(0, 400), float(rng.randrange(400)), rng.randrange(40) / 24])
        if c > 0:
            t = first_at_least(anchor, c)
            assert t == round(t * 1000) / 1000  # on the millisecond grid
            assert days(t, anchor) >= c > days(before(t), anchor)
        t = first_above(anchor, c)
        assert days(t, anchor) > c >= days(before(t), anchor)


def test_thresholds_the_clock_never_crosses():
    assert first_at_least(T0, 0.0) == -INF  # always true (the clock is never negative)
    assert first_above(T0, -1.0) == -INF
    assert first_above(T0, 0.0) == T0 + 0.001
    assert first_at_least(T0, math.nan) == INF and first_above(T0, math.inf) == INF


def crossings(p: object) -> list[tuple[str, float]]:
    assert isinstance(p, Earliest) and all(isinstance(c, Crossing) for c in p.parts)
    return [(c.op, c.c) for c in p.parts if isinstance(c, Crossing)]


def plan(when: str) -> object:
    rules = loads_rules(f"segments:\n  - name: s\n    when: {when}\n", "t.yaml")
    return plan_of(rules.segments[0].when.fn, rules.settings.reevaluate_every)


def test_plans_read_off_the_compiled_tree():
    assert plan("orders >= 2 and affinity('road') > 0.5") is None
    p = plan("days_since_last_order > 45d")
    assert isinstance(p, Crossing) and (p.op, p.c, p.above, p.at_least) == (">", 45.0, True, False)
    assert crossings(plan("30 <= days_since_last_seen < 60")) == [(">=", 30.0), ("<", 60.0)]
    p = plan("orders >= 3 and not days_since_last_order > 45d")
    assert isinstance(p, AllOf) and len(p.fixed) == 1 and isinstance(p.parts[0], Crossing)
    assert isinstance(plan("p_alive < 0.3"), Cadence)
    assert isinstance(plan("days_since_last_order * 2 > 90"), Cadence)  # arithmetic: cadence
    assert crossings(plan("1 < days_since_last_seen < 5 < 10")) == [(">", 1.0), ("<", 5.0)]
