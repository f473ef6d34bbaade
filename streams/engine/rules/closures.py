"""Closure builders for compiled expressions: total functions of a FeatureView.

Every closure returns a value and never raises for odd data: a missing value (None) makes any
comparison False and any arithmetic None; `not None` is True. The view is only ever touched
through `operator.attrgetter` of a `namespace.FEATURES` attr and calls of the `trait` method
or of a `namespace.FUNCTIONS` name, all fixed by the compiler.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

Fn = Callable[[Any], Any]
BinOp = Callable[[Any, Any], Any]


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _contains(a: Any, b: Any) -> bool:
    return a in b


def _not_contains(a: Any, b: Any) -> bool:
    return a not in b


COMPARE: dict[str, BinOp] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": _contains,
    "not in": _not_contains,
}

ARITH: dict[str, BinOp] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def constant(value: Any) -> Fn:
    """A closure that returns `value`."""

    def const(view: Any) -> Any:
        return value

    return const


def memo(fn: Fn, slot: int) -> Fn:
    """`fn`, computed at most once per view: the value is kept in the view's `memo` dict under
    `slot` (views without a `memo` attribute just compute it). Only for `fn`s that read no
    memberships, which change while the segments are evaluated."""

    def memoized(view: Any) -> Any:
        try:
            values = view.memo
        except AttributeError:
            return fn(view)
        if slot in values:  # cheaper than values.get() in CPython 3.11
            return values[slot]
        value = values[slot] = fn(view)
        return value

    return memoized


def feature(attr: str) -> Fn:
    """Reads a plain feature (attr from namespace.FEATURES only)."""
    return operator.attrgetter(attr)


def trait(name: str) -> Fn:
    """Reads a trait through `view.trait(name)`."""
    return lambda view: view.trait(name)


# Calls with constant arguments, the common case, as plain Python closures: the interpreter
# calls those and the view's method without the C round trip of operator.methodcaller.
def _affinity(category: Any) -> Fn:
    return lambda view: view.affinity(category)


def _brand_affinity(brand: Any) -> Fn:
    return lambda view: view.brand_affinity(brand)


def _distance_km(lat: Any, lon: Any) -> Fn:
    return lambda view: view.distance_km(lat, lon)


def _in_segment(name: Any) -> Fn:
    return lambda view: view.in_segment(name)


_CONSTANT_CALLS: dict[str, Callable[..., Fn]] = {
    "affinity": _affinity,
    "brand_affinity": _brand_affinity,
    "distance_km": _distance_km,
    "in_segment": _in_segment,
}


def call(function: str, args: Sequence[tuple[bool, Any, Fn]]) -> Fn:
    """Calls a namespace function; `args` are (is_constant, value, fn). None arguments give None."""
    if all(is_const for is_const, _, _ in args):
        values = [value for _, value, _ in args]
        if any(v is None for v in values):
            return constant(None)
        build = _CONSTANT_CALLS.get(function)
        if build is not None:
            return build(*values)
        return operator.methodcaller(function, *values)
    method = operator.attrgetter(function)
    fns = [fn for _, _, fn in args]

    def call_(view: Any) -> Any:
        values = [f(view) for f in fns]
        if None in values:
            return None
        try:
            return method(view)(*values)
        except (TypeError, ValueError, ArithmeticError):
            return None

    return call_


def _is_null_test(op: str, c: Any) -> bool:
    return c is None and op in ("==", "!=")


def _null_test(op: str, f: Fn) -> Fn:
    """`x == null` / `x != null`: the one comparison where None is a value, not 'unknown'."""
    if op == "==":
        return lambda view: f(view) is None
    return lambda view: f(view) is not None


def compare(ops: Sequence[str], parts: Sequence[tuple[bool, Any, Fn]]) -> Fn:
    """The comparison `p0 OP p1 OP p2 ...`; `parts` are (is_constant, value, fn). Common shapes
    (feature OP constant, constant OP feature, lo OP feature OP hi) become a single closure."""
    if len(ops) == 1:
        (op,), ((a_const, a_value, a), (b_const, b_value, b)) = ops, parts
        if b_const:
            return compare_var_const(op, a, b_value)
        if a_const:
            return compare_const_var(op, a_value, b)
        return compare_pair(op, a, b)
    ranged = len(ops) == 2 and not {"in", "not in"} & set(ops)
    if ranged and parts[0][0] and parts[2][0] and not parts[1][0]:
        return compare_range(parts[0][1], ops[0], parts[1][2], ops[1], parts[2][1])
    return compare_chain(ops, [fn for _, _, fn in parts])


def compare_var_const(op: str, get: Fn, c: Any) -> Fn:
    """`get(view) OP c` as a single closure with the constant and operator pre-bound."""
    if _is_null_test(op, c):
        return _null_test(op, get)
    if c is None:
        return constant(False)
    if op in ("in", "not in"):
        if not isinstance(c, tuple | list | str):
            return constant(False)
        container = frozenset(c) if isinstance(c, tuple | list) else c
        test = container.__contains__
        negate = op == "not in"

        def member(view: Any) -> bool:
            x = get(view)
            if x is None:
                return False
            try:
                return test(x) is not negate
            except TypeError:
                return False

        return member
    return _INLINE[op](get, c)


def _eq(get: Fn, c: Any) -> Fn:
    return lambda view: get(view) == c  # c is not None, so None == c is False


def _ne(get: Fn, c: Any) -> Fn:
    def ne(view: Any) -> bool:
        x = get(view)
        return x is not None and x != c

    return ne


# Ordering a None (or a value of another type) raises TypeError: that is our False.
def _lt(get: Fn, c: Any) -> Fn:
    def lt(view: Any) -> Any:
        try:
            return get(view) < c
        except TypeError:
            return False

    return lt


def _le(get: Fn, c: Any) -> Fn:
    def le(view: Any) -> Any:
        try:
            return get(view) <= c
        except TypeError:
            return False

    return le


def _gt(get: Fn, c: Any) -> Fn:
    def gt(view: Any) -> Any:
        try:
            return get(view) > c
        except TypeError:
            return False

    return gt


def _ge(get: Fn, c: Any) -> Fn:
    def ge(view: Any) -> Any:
        try:
            return get(view) >= c
        except TypeError:
            return False

    return ge


_INLINE: dict[str, Callable[[Fn, Any], Fn]] = {
    "==": _eq,
    "!=": _ne,
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def compare_const_var(op: str, c: Any, get: Fn) -> Fn:
    """`c OP get(view)`, e.g. `500 <= price_band` or `"vip" in traits.tags`."""
    if _is_null_test(op, c):
        return _null_test(op, get)
    if c is None:
        return constant(False)
    if op in _MIRROR:  # `500 <= price_band` is `price_band >= 500`
        return compare_var_const(_MIRROR[op], get, c)
    fop = COMPARE[op]

    def cmp(view: Any) -> Any:
        y = get(view)
        if y is None:
            return False
        try:
            return fop(c, y)
        except TypeError:
            return False

    return cmp


def compare_chain(ops: Sequence[str], fns: Sequence[Fn]) -> Fn:
    """`a OP b OP c ...` with Python chain semantics: each operand evaluated at most once."""
    first, rest = fns[0], [(COMPARE[o], f) for o, f in zip(ops, fns[1:], strict=True)]

    def chain(view: Any) -> bool:
        x = first(view)
        for fop, f in rest:
            y = f(view)
            if x is None or y is None:
                return False
            try:
                if not fop(x, y):
                    return False
            except TypeError:
                return False
            x = y
        return True

    return chain


def compare_range(lo: Any, op1: str, get: Fn, op2: str, hi: Any) -> Fn:
    """`lo OP get(view) OP hi` (e.g. `500 <= price_band < 2000`) as one closure."""
    if lo is None or hi is None:
        return constant(False)
    if (op1, op2) == ("<=", "<"):

        def half_open(view: Any) -> Any:
            try:
                return lo <= get(view) < hi
            except TypeError:
                return False

        return half_open
    f1, f2 = COMPARE[op1], COMPARE[op2]

    def between(view: Any) -> Any:
        x = get(view)
        if x is None:
            return False
        try:
            return f1(lo, x) and f2(x, hi)
        except TypeError:
            return False

    return between


def compare_pair(op: str, a: Fn, b: Fn) -> Fn:
    """`a(view) OP b(view)`, both non-constant."""
    fop = COMPARE[op]

    def cmp(view: Any) -> Any:
        x = a(view)
        y = b(view)
        if x is None or y is None:
            return False
        try:
            return fop(x, y)
        except TypeError:
            return False

    return cmp


def arith(op: str, a: Fn, b: Fn) -> Fn:
    """Arithmetic on numbers; anything else (None, strings, division by zero) gives None."""
    fop = ARITH[op]

    def calc(view: Any) -> Any:
        x = a(view)
        y = b(view)
        if not (_is_number(x) and _is_number(y)):
            return None
        try:
            return fop(x, y)
        except (ArithmeticError, ValueError):
            return None

    return calc


def negate(f: Fn) -> Fn:
    """Unary minus on a number; anything else gives None."""

    def neg(view: Any) -> Any:
        x = f(view)
        return -x if _is_number(x) else None

    return neg


def plus(f: Fn) -> Fn:
    """Unary plus: the number itself, anything else gives None."""

    def pos(view: Any) -> Any:
        x = f(view)
        return x if _is_number(x) else None

    return pos


def not_(f: Fn) -> Fn:
    """Logical not; `not None` is True."""
    return lambda view: not f(view)


def as_bool(f: Fn) -> Fn:
    """`f` as True/False (for and/or over operands that may return other values)."""
    return lambda view: bool(f(view))


def and_(fns: Sequence[Fn]) -> Fn:
    """Short-circuit and: the first false operand's value, else the last (see `as_bool`)."""
    if len(fns) == 2:
        a, b = fns
        return lambda view: a(view) and b(view)
    if len(fns) == 3:
        a, b, c = fns
        return lambda view: a(view) and b(view) and c(view)
    fs = tuple(fns)

    def all_(view: Any) -> bool:
        for f in fs:  # noqa: SIM110 - a plain loop beats all() over a generator
            if not f(view):
                return False
        return True

    return all_


def or_(fns: Sequence[Fn]) -> Fn:
    """Short-circuit or: the first true operand's value, else the last (see `as_bool`)."""
    if len(fns) == 2:
        a, b = fns
        return lambda view: a(view) or b(view)
    if len(fns) == 3:
        a, b, c = fns
        return lambda view: a(view) or b(view) or c(view)
    fs = tuple(fns)

    def any_(view: Any) -> bool:
        for f in fs:  # noqa: SIM110 - a plain loop beats any() over a generator
            if f(view):
                return True
        return False

    return any_
