"""When time alone can change a segment: each segment's "time plan", built once from its tree.

A segment reading a time-dependent feature (TIME_DEPENDENCE) can change membership with no event
of the consumer. After every evaluation the engine asks the plans for the consumer's next
re-check, the earliest instant after `now` at which some time-comparison may change its value:

- a comparison of a clock feature (`days_since_last_order > 45d`, chains, ranges) with a constant
  changes exactly when the clock crosses the constant: re-checked at that millisecond. At the
  instant of equality `days_since_last_order > 45d` is still false and `>= 45d` already true, so
  `>` (and `<=`) change one millisecond after last order + 45 d, `>=` (and `<`) at it, `==` and
  `!=` at both;
- anything else time can move (`p_alive`, `expected_orders_90d`, `rfm.*`, a clock feature inside
  arithmetic...) is re-checked on the cadence `settings.reevaluate_every`, at instants
  staggered per consumer (a phase from a hash of its id), so re-checks do not all fall at once;
  what reads only `rfm.*` (moved by the population, not by time) is re-checked at the first
  cadence instant after a horizon until which the caller knows the population stands still
  (the end of a firing pass: `next(view, horizon)`), since the ones before could change nothing;
- `a and b` with an operand that only events can change and that is false now cannot become
  true by time alone (no re-check from it); `a or b` likewise with such an operand true;
- `in_segment("x")` adds nothing: segment x has its own plan, and a re-check evaluates every
  segment that reads time or memberships.

Everything here is read off the compiled node tree (rules.nodes) when the rules are loaded.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Final
from zlib import crc32

from streams.engine.registry import FEATURES
from streams.engine.rules import nodes as N
from streams.engine.view import View

INF: Final = math.inf
DAY: Final = 86400.0  # as View computes days_since_*
#: beyond this many days a crossing is never (and the millisecond arithmetic stays exact)
MAX_DAYS: Final = 1e6

# Guards: a drift feature moves only for consumers that pass its guard (levels nest: a consumer
# passing a higher level passes every lower one; a plan reading several takes the lowest).
ALWAYS: Final = 0
ORDERED: Final = 1  # last_order is known
BUYER: Final = 2  # orders > 0 and last_order known (rfm.* is 0 otherwise)
REPEAT: Final = 3  # orders >= 2 (P(alive) is 1 with no repeat purchase)
GUARDS: dict[str, int] = {
    "always": ALWAYS, "ordered": ORDERED, "buyer": BUYER, "repeat_buyer": REPEAT,
}
# Clock anchors: the ConsumerState field a clock feature counts the days from.
LAST_ORDER: Final = 0
LAST_SEEN: Final = 1
ANCHORS: dict[str, int] = {"last_order": LAST_ORDER, "last_seen": LAST_SEEN}

#: The features time alone moves, by rules name, and how (derived from the registry):
#: ("clock", anchor): max(0, now - anchor) in days, so crossings of constants are exact;
#: ("drift", guard): moves continuously or with the population, re-checked on the
#: cadence while the consumer passes the guard.
TIME_DEPENDENCE: dict[str, tuple[str, str]] = {
    f.name: ("clock", f.since or "") if f.time == "crossing" else ("drift", f.drifts_for)
    for f in FEATURES.values()
    if f.time != "none"
}
_CLOCKS: dict[str, int] = {
    FEATURES[name].attr: ANCHORS[arg] for name, (how, arg) in TIME_DEPENDENCE.items()
    if how == "clock"
}
#: drift features that move with the population alone (rfm.*: scores against the other buyers),
#: not with time: while the population stands still, re-checking them changes nothing
_POPULATION: frozenset[str] = frozenset(
    f.attr for f in FEATURES.values() if f.time == "cadence" and f.population
)
#: guard of a feature read anywhere else than in a comparison with a constant
_GUARDS: dict[str, int] = {
    FEATURES[name].attr: GUARDS[arg] if how == "drift" else (
        ORDERED if arg == "last_order" else ALWAYS
    )
    for name, (how, arg) in TIME_DEPENDENCE.items()
}


def _days(t: float, anchor: float) -> float:
    return max(0.0, (t - anchor) / DAY)  # exactly View.days_since_*


def first_at_least(anchor: float, c: float) -> float:
    """The first millisecond at which max(0, days since `anchor`) >= c (-inf: always)."""
    if not c > 0.0:
        return -INF if c <= 0.0 else INF  # (nan: never)
    if not c < MAX_DAYS:
        return INF
    ms = math.ceil((anchor + c * DAY) * 1000.0)
    while _days(ms / 1000.0, anchor) < c:
        ms += 1
    while _days((ms - 1) / 1000.0, anchor) >= c:
        ms -= 1
    return ms / 1000.0


def first_above(anchor: float, c: float) -> float:
    """The first millisecond at which max(0, days since `anchor`) > c (-inf: always)."""
    if not c >= 0.0:
        return -INF if c < 0.0 else INF
    if not c < MAX_DAYS:
        return INF
    ms = math.floor((anchor + c * DAY) * 1000.0)
    while _days(ms / 1000.0, anchor) <= c:
        ms += 1
    while _days((ms - 1) / 1000.0, anchor) > c:
        ms -= 1
    return ms / 1000.0


class TimePlan:
    """A segment's (sub-)expression as time moves it: `next(view, horizon)` is the earliest
    instant after `view.now` at which its value may change with no event (inf: never), given
    that the population stands still until `horizon` (-inf: no such promise)."""

    def next(self, view: View, horizon: float) -> float:
        raise NotImplementedError


class Crossing(TimePlan):
    """`clock OP c`: changes when the clock reaches c (`at_least`) and/or passes it (`above`)."""

    def __init__(self, anchor: int, op: str, c: float) -> None:
        self.anchor = anchor
        self.op = op
        self.c = c
        self.at_least = op in (">=", "<", "==", "!=")
        self.above = op in (">", "<=", "==", "!=")

    def next(self, view: View, horizon: float) -> float:
        s = view.state
        a = s.last_order if self.anchor == LAST_ORDER else s.last_seen
        if a is None:
            return INF
        now = view.now
        best = INF
        if self.at_least:
            t = first_at_least(a, self.c)
            if now < t < best:
                best = t
        if self.above:
            t = first_above(a, self.c)
            if now < t < best:
                best = t
        return best


class Cadence(TimePlan):
    """Re-checked every `every_ms` at the consumer's phase, while it passes `guard`.
    `population`: it reads no feature that time moves, only ones the population moves (rfm.*),
    so the re-checks up to a horizon the population stands still until change nothing: the next
    one that can is the first after the horizon."""

    def __init__(self, every: float, guard: int, population: bool = False) -> None:
        self.every_ms = max(1, round(every * 1000.0))
        self.guard = guard
        self.population = population

    def next(self, view: View, horizon: float) -> float:
        s = view.state
        guard = self.guard
        if guard >= ORDERED and s.last_order is None:
            return INF
        if guard >= BUYER and s.orders <= 0:
            return INF
        if guard >= REPEAT and (s.orders < 2 or s.first_order is None):
            return INF
        every = self.every_ms
        phase = crc32(s.id.encode()) % every
        now = view.now
        if self.population and horizon > now:
            now = horizon
        now_ms = math.floor(now * 1000.0)
        k = (now_ms - phase) // every + 1
        return (phase + k * every) / 1000.0


class Earliest(TimePlan):
    """Several time-comparisons, all of which matter (a range `lo <= clock < hi`, a chain)."""

    def __init__(self, parts: tuple[TimePlan, ...]) -> None:
        self.parts = parts

    def next(self, view: View, horizon: float) -> float:
        return _earliest(self.parts, view, horizon)


def _earliest(parts: tuple[TimePlan, ...], view: View, horizon: float) -> float:
    """The earliest next re-check of `parts` (inf: none)."""
    best = INF
    for p in parts:
        t = p.next(view, horizon)
        if t < best:
            best = t
    return best


class AllOf(TimePlan):
    """`and`: never by time while an operand only events change (`fixed`) is false."""

    def __init__(self, fixed: tuple[N.Node, ...], parts: tuple[TimePlan, ...]) -> None:
        self.fixed = fixed
        self.parts = parts

    def next(self, view: View, horizon: float) -> float:
        for n in self.fixed:
            if not n.ev(view):
                return INF
        return _earliest(self.parts, view, horizon)


class AnyOf(TimePlan):
    """`or`: never by time while an operand only events change (`fixed`) is true."""

    def __init__(self, fixed: tuple[N.Node, ...], parts: tuple[TimePlan, ...]) -> None:
        self.fixed = fixed
        self.parts = parts

    def next(self, view: View, horizon: float) -> float:
        for n in self.fixed:
            if n.ev(view):
                return INF
        return _earliest(self.parts, view, horizon)


# ------------------------------------------------------------------ building plans (load time)
FIXED = "fixed"  # only events change it
COVERED = "covered"  # reads memberships: other segments' plans cover it
Analysis = TimePlan | str

_VS_OPS: dict[type, str] = {N.Eq: "==", N.Ne: "!=", N.Lt: "<", N.Le: "<=", N.Gt: ">", N.Ge: ">="}
_FN_OPS: dict[Callable[[Any, Any], Any], str] = {
    operator.eq: "==", operator.ne: "!=", operator.lt: "<", operator.le: "<=",
    operator.gt: ">", operator.ge: ">=",
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def plan_of(node: N.Node, every: float) -> TimePlan | None:
    """The time plan of a segment's compiled expression; None if time alone cannot change it."""
    found = _analyze(node, every)
    return found if isinstance(found, TimePlan) else None


def _unwrap(n: N.Node) -> N.Node:
    while isinstance(n, N.Memo):
        n = n.node
    return n


def _clock(n: N.Node) -> int | None:
    n = _unwrap(n)
    if isinstance(n, N.Feature):
        return _CLOCKS.get(n.attr)
    return None


def _number(n: N.Node) -> float | None:
    n = _unwrap(n)
    if isinstance(n, N.Const) and isinstance(n.value, int | float) and not isinstance(
        n.value, bool
    ):
        return float(n.value)
    return None


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _children(n: N.Node) -> list[N.Node]:
    kids: list[N.Node] = []
    for attr in ("node", "a", "b", "first"):
        k = getattr(n, attr, None)
        if isinstance(k, N.Node):
            kids.append(k)
    for attr in ("nodes", "args"):
        ks = getattr(n, attr, None)
        if isinstance(ks, tuple | list):
            kids.extend(k for k in ks if isinstance(k, N.Node))
    rest = getattr(n, "rest", None)
    if isinstance(rest, list):
        kids.extend(k for _, k in rest)
    return kids


def _reads(n: N.Node) -> tuple[int | None, bool, bool]:
    """(lowest guard of the time-dependent features read below n, or None; reads memberships;
    reads one that time itself moves, not only the population)."""
    n = _unwrap(n)
    if isinstance(n, N.InSegment):
        return None, True, False
    if isinstance(n, N.ConstCall | N.Call):
        return None, False, False  # affinity, distance: not moved by time (nor in_segment)
    guard: int | None = None
    timed = False
    if isinstance(n, N.Feature):
        guard = _GUARDS.get(n.attr)
        timed = guard is not None and n.attr not in _POPULATION
    members = False
    for k in _children(n):
        g, m, tm = _reads(k)
        members = members or m
        timed = timed or tm
        if g is not None and (guard is None or g < guard):
            guard = g
    return guard, members, timed


def _fallback(n: N.Node, every: float) -> Analysis:
    guard, members, timed = _reads(n)
    if guard is not None:
        return Cadence(every, guard, not timed)
    return COVERED if members else FIXED


def _crossing(x: N.Node, op: str, y: N.Node) -> Crossing | None:
    """`x OP y` as a crossing if one side is a clock and the other a number."""
    anchor, c = _clock(x), _number(y)
    if anchor is not None and c is not None:
        return Crossing(anchor, op, c)
    anchor, c = _clock(y), _number(x)
    if anchor is not None and c is not None:
        return Crossing(anchor, _MIRROR[op], c)
    return None


def _analyze(n: N.Node, every: float) -> Analysis:
    n = _unwrap(n)
    if isinstance(n, N.Not | N.AsBool):
        return _analyze(n.node, every)
    if isinstance(n, N.And | N.Or | N.AllOf | N.AnyOf):
        kids = [n.a, n.b] if isinstance(n, N.And | N.Or) else list(n.nodes)
        found = [_analyze(k, every) for k in kids]
        parts = _distinct([f for f in found if isinstance(f, TimePlan)])
        if not parts:
            return COVERED if COVERED in found else FIXED
        fixed = tuple(k for k, f in zip(kids, found, strict=True) if f == FIXED)
        if not fixed and len(parts) == 1:
            return parts[0]  # (the earliest of one plan: itself)
        if isinstance(n, N.And | N.AllOf):
            return AllOf(fixed, parts)
        return AnyOf(fixed, parts)
    if isinstance(n, N.VsConst) and type(n) in _VS_OPS:
        anchor = _clock(n.node)
        if anchor is not None and _is_number(n.c):
            return Crossing(anchor, _VS_OPS[type(n)], float(n.c))
    if isinstance(n, N.HalfOpen | N.Between):
        anchor = _clock(n.node)
        if anchor is not None and _is_number(n.lo) and _is_number(n.hi):
            op1, op2 = ("<=", "<") if isinstance(n, N.HalfOpen) else (
                _FN_OPS.get(n.f1, ""), _FN_OPS.get(n.f2, "")
            )
            if op1 and op2:  # lo OP1 x OP2 hi: x MIRROR(OP1) lo, x OP2 hi
                return Earliest((
                    Crossing(anchor, _MIRROR[op1], float(n.lo)),
                    Crossing(anchor, op2, float(n.hi)),
                ))
    if isinstance(n, N.Chain | N.Pair):
        pairs = _pairs(n)
        if pairs is not None:
            crossings: list[TimePlan] = []
            for x, op, y in pairs:
                c = _crossing(x, op, y)
                if c is not None:
                    crossings.append(c)
                elif _fallback(x, every) != FIXED or _fallback(y, every) != FIXED:
                    return _fallback(n, every)  # some other shape that time moves
            if crossings:
                return crossings[0] if len(crossings) == 1 else Earliest(tuple(crossings))
    return _fallback(n, every)


def _distinct(parts: list[TimePlan]) -> tuple[TimePlan, ...]:
    """`parts` without repeated cadences (`rfm.r >= 4 and rfm.f >= 4` has the same one twice:
    the earliest of both is either's)."""
    out: list[TimePlan] = []
    seen: set[tuple[int, int, bool]] = set()
    for p in parts:
        if isinstance(p, Cadence):
            key = (p.every_ms, p.guard, p.population)
            if key in seen:
                continue
            seen.add(key)
        out.append(p)
    return tuple(out)


def _pairs(n: N.Node) -> list[tuple[N.Node, str, N.Node]] | None:
    """The adjacent comparisons of a chain or pair, None if an operator is not an order."""
    if isinstance(n, N.Pair):
        op = _FN_OPS.get(n.fop)
        return None if op is None else [(n.a, op, n.b)]
    assert isinstance(n, N.Chain)
    out: list[tuple[N.Node, str, N.Node]] = []
    x = n.first
    for fop, y in n.rest:
        op = _FN_OPS.get(fop)
        if op is None:
            return None
        out.append((x, op, y))
        x = y
    return out
