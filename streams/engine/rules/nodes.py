"""Expression nodes for compiled expressions: total functions of a FeatureView.

A compiled expression is a tree of `Node`s; `node.ev(view)` (or `node(view)`) evaluates it.
Every node returns a value and never raises for odd data: a missing value (None) makes any
comparison False and any arithmetic None; `not None` is True. The view is only ever touched
through a `namespace.FEATURES` attr, the `trait` method or a `namespace.FUNCTIONS` method, all
fixed by the compiler. The engine's own `View` is read natively (compiled, these are direct
calls); any other FeatureView through its Python attributes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from streams.engine.view import View

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


class Node:
    """A compiled (sub-)expression. `view` is a FeatureView, or None for constant trees."""

    def ev(self, view: Any) -> Any:
        raise NotImplementedError

    def __call__(self, view: Any) -> Any:
        return self.ev(view)


class Const(Node):
    def __init__(self, value: Any) -> None:
        self.value = value

    def ev(self, view: Any) -> Any:
        return self.value


class Memo(Node):
    """`node`, computed at most once per view. For the engine's View the node keeps the value of
    the last view (and `View.stamp`) it saw, which serves all the uses of one evaluation; other
    views keep it in their `memo` dict under `slot` (views without one just compute it). Only
    for nodes that read no memberships, which change while the segments are evaluated."""

    def __init__(self, node: Node, slot: int) -> None:
        self.node = node
        self.slot = slot
        self.view: View | None = None
        self.stamp = 0
        self.value: Any = None

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            if self.view is view and self.stamp == view.stamp:
                return self.value
            value = self.node.ev(view)
            self.view = view
            self.stamp = view.stamp
            self.value = value
            return value
        try:
            values = view.memo
        except AttributeError:
            return self.node.ev(view)
        slot = self.slot
        if slot in values:
            return values[slot]
        value = values[slot] = self.node.ev(view)
        return value


class Feature(Node):
    """Reads a plain feature (attr from namespace.FEATURES only); see also `readers`."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def ev(self, view: Any) -> Any:
        return getattr(view, self.attr)


class Trait(Node):
    """Reads a trait through `view.trait(name)`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.trait(self.name)
        return view.trait(self.name)


# Calls with constant arguments, the common case, as nodes of their own.
class Affinity(Node):
    def __init__(self, category: str) -> None:
        self.category = category
        self.key = category.lower()  # what View.affinity() looks up, lowered once

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.category_share(self.key)
        return view.affinity(self.category)


class BrandAffinity(Node):
    def __init__(self, brand: str) -> None:
        self.brand = brand
        self.key = brand.lower()

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.brand_share(self.key)
        return view.brand_affinity(self.brand)


class DistanceKm(Node):
    def __init__(self, lat: float, lon: float) -> None:
        self.lat = lat
        self.lon = lon

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.distance_km(self.lat, self.lon)
        return view.distance_km(self.lat, self.lon)


class InSegment(Node):
    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, view: Any) -> Any:
        if type(view) is View:
            return view.in_segment(self.name)
        return view.in_segment(self.name)


class ConstCall(Node):
    """`view.function(*values)`, constant arguments."""

    def __init__(self, function: str, values: Sequence[Any]) -> None:
        self.method = operator.methodcaller(function, *values)

    def ev(self, view: Any) -> Any:
        return self.method(view)


class Call(Node):
    """`view.function(*args)`; a None argument, or bad ones, give None."""

    def __init__(self, function: str, args: Sequence[Node]) -> None:
        self.method = operator.attrgetter(function)
        self.args = tuple(args)

    def ev(self, view: Any) -> Any:
        values = [a.ev(view) for a in self.args]
        if None in values:
            return None
        try:
            return self.method(view)(*values)
        except (TypeError, ValueError, ArithmeticError):
            return None


def call(function: str, args: Sequence[tuple[bool, Any, Node]]) -> Node:
    """Calls a namespace function; `args` are (is_constant, value, node). None arguments give
    None."""
    if all(is_const for is_const, _, _ in args):
        values = [value for _, value, _ in args]
        if any(v is None for v in values):
            return Const(None)
        if len(values) == 1 and isinstance(values[0], str):
            build = _ONE_STRING.get(function)
            if build is not None:
                return build(values[0])
        if function == "distance_km" and all(_is_number(v) for v in values):
            return DistanceKm(float(values[0]), float(values[1]))
        return ConstCall(function, values)
    return Call(function, [n for _, _, n in args])


_ONE_STRING: dict[str, Callable[[str], Node]] = {
    "affinity": Affinity,
    "brand_affinity": BrandAffinity,
    "in_segment": InSegment,
}


class IsNull(Node):
    """`x == null`: the one comparison where None is a value, not 'unknown'."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        return self.node.ev(view) is None


class NotNull(Node):
    """`x != null`."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        return self.node.ev(view) is not None


def compare(ops: Sequence[str], parts: Sequence[tuple[bool, Any, Node]]) -> Node:
    """The comparison `p0 OP p1 OP p2 ...`; `parts` are (is_constant, value, node). Common shapes
    (feature OP constant, constant OP feature, lo OP feature OP hi) become a single node."""
    if len(ops) == 1:
        (op,), ((a_const, a_value, a), (b_const, b_value, b)) = ops, parts
        if b_const:
            return compare_var_const(op, a, b_value)
        if a_const:
            return compare_const_var(op, a_value, b)
        return Pair(op, a, b)
    ranged = len(ops) == 2 and not {"in", "not in"} & set(ops)
    if ranged and parts[0][0] and parts[2][0] and not parts[1][0]:
        return compare_range(parts[0][1], ops[0], parts[1][2], ops[1], parts[2][1])
    return Chain(ops, [n for _, _, n in parts])


def _null_test(op: str, c: Any, node: Node) -> Node | None:
    if c is not None:
        return None
    if op == "==":
        return IsNull(node)
    if op == "!=":
        return NotNull(node)
    return Const(False)


def compare_var_const(op: str, node: Node, c: Any) -> Node:
    """`node OP c` as a single node with the constant and operator pre-bound."""
    null = _null_test(op, c, node)
    if null is not None:
        return null
    if op in ("in", "not in"):
        if not isinstance(c, tuple | list | str):
            return Const(False)
        return Member(node, frozenset(c) if isinstance(c, tuple | list) else c, op == "not in")
    return _VS_CONST[op](node, c)


class Member(Node):
    """`x in container` / `x not in container`; a None or unhashable x is False."""

    def __init__(self, node: Node, container: Any, negate: bool) -> None:
        self.node = node
        self.container = container
        self.negate = negate

    def ev(self, view: Any) -> Any:
        x = self.node.ev(view)
        if x is None:
            return False
        try:
            return (x in self.container) is not self.negate
        except TypeError:
            return False


class VsConst(Node):
    """`node OP c`, c not None (so `None OP c` is False).

    Compiled, a float x compares natively with `num` when that float equals c exactly, and an
    int x with c an int `whole` (the same results: Python compares floats and ints exactly)."""

    def __init__(self, node: Node, c: Any) -> None:
        self.node = node
        self.c = c
        self.exact = isinstance(c, float) or (_is_number(c) and bool(abs(c) < 2**53))
        self.num = float(c) if self.exact else 0.0
        self.is_int = type(c) is int
        self.whole = c if type(c) is int else 0


class Eq(VsConst):
    def ev(self, view: Any) -> Any:
        return self.node.ev(view) == self.c


class Ne(VsConst):
    def ev(self, view: Any) -> Any:
        x = self.node.ev(view)
        return x is not None and x != self.c


# Ordering a None (or a value of another type) raises TypeError: that is our False.
class Lt(VsConst):
    def ev(self, view: Any) -> Any:
        try:
            x = self.node.ev(view)
            if type(x) is float and self.exact:
                return x < self.num
            if type(x) is int and self.is_int:
                return x < self.whole
            return x < self.c
        except TypeError:
            return False


class Le(VsConst):
    def ev(self, view: Any) -> Any:
        try:
            x = self.node.ev(view)
            if type(x) is float and self.exact:
                return x <= self.num
            if type(x) is int and self.is_int:
                return x <= self.whole
            return x <= self.c
        except TypeError:
            return False


class Gt(VsConst):
    def ev(self, view: Any) -> Any:
        try:
            x = self.node.ev(view)
            if type(x) is float and self.exact:
                return x > self.num
            if type(x) is int and self.is_int:
                return x > self.whole
            return x > self.c
        except TypeError:
            return False


class Ge(VsConst):
    def ev(self, view: Any) -> Any:
        try:
            x = self.node.ev(view)
            if type(x) is float and self.exact:
                return x >= self.num
            if type(x) is int and self.is_int:
                return x >= self.whole
            return x >= self.c
        except TypeError:
            return False


_VS_CONST: dict[str, Callable[[Node, Any], Node]] = {
    "==": Eq,
    "!=": Ne,
    "<": Lt,
    "<=": Le,
    ">": Gt,
    ">=": Ge,
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def compare_const_var(op: str, c: Any, node: Node) -> Node:
    """`c OP node`, e.g. `500 <= price_band` or `"vip" in traits.tags`."""
    null = _null_test(op, c, node)
    if null is not None:
        return null
    if op in _MIRROR:  # `500 <= price_band` is `price_band >= 500`
        return compare_var_const(_MIRROR[op], node, c)
    return ConstVs(op, c, node)


class ConstVs(Node):
    """`c in node` / `c not in node`: a None or unsuitable container is False."""

    def __init__(self, op: str, c: Any, node: Node) -> None:
        self.fop = COMPARE[op]
        self.c = c
        self.node = node

    def ev(self, view: Any) -> Any:
        y = self.node.ev(view)
        if y is None:
            return False
        try:
            return self.fop(self.c, y)
        except TypeError:
            return False


class Chain(Node):
    """`a OP b OP c ...` with Python chain semantics: each operand evaluated at most once."""

    def __init__(self, ops: Sequence[str], nodes: Sequence[Node]) -> None:
        self.first = nodes[0]
        self.rest = [(COMPARE[o], n) for o, n in zip(ops, nodes[1:], strict=True)]

    def ev(self, view: Any) -> Any:
        x = self.first.ev(view)
        for fop, n in self.rest:
            y = n.ev(view)
            if x is None or y is None:
                return False
            try:
                if not fop(x, y):
                    return False
            except TypeError:
                return False
            x = y
        return True


def compare_range(lo: Any, op1: str, node: Node, op2: str, hi: Any) -> Node:
    """`lo OP node OP hi` (e.g. `500 <= price_band < 2000`) as one node."""
    if lo is None or hi is None:
        return Const(False)
    if (op1, op2) == ("<=", "<"):
        return HalfOpen(lo, node, hi)
    return Between(lo, op1, node, op2, hi)


class HalfOpen(Node):
    """`lo <= x < hi`."""

    def __init__(self, lo: Any, node: Node, hi: Any) -> None:
        self.lo = lo
        self.node = node
        self.hi = hi

    def ev(self, view: Any) -> Any:
        try:
            return self.lo <= self.node.ev(view) < self.hi
        except TypeError:
            return False


class Between(Node):
    """`lo OP1 x OP2 hi`."""

    def __init__(self, lo: Any, op1: str, node: Node, op2: str, hi: Any) -> None:
        self.lo = lo
        self.f1 = COMPARE[op1]
        self.node = node
        self.f2 = COMPARE[op2]
        self.hi = hi

    def ev(self, view: Any) -> Any:
        x = self.node.ev(view)
        if x is None:
            return False
        try:
            return self.f1(self.lo, x) and self.f2(x, self.hi)
        except TypeError:
            return False


class Pair(Node):
    """`a OP b`, both non-constant."""

    def __init__(self, op: str, a: Node, b: Node) -> None:
        self.fop = COMPARE[op]
        self.a = a
        self.b = b

    def ev(self, view: Any) -> Any:
        x = self.a.ev(view)
        y = self.b.ev(view)
        if x is None or y is None:
            return False
        try:
            return self.fop(x, y)
        except TypeError:
            return False


class Arith(Node):
    """Arithmetic on numbers; anything else (None, strings, division by zero) gives None."""

    def __init__(self, op: str, a: Node, b: Node) -> None:
        self.fop = ARITH[op]
        self.a = a
        self.b = b

    def ev(self, view: Any) -> Any:
        x = self.a.ev(view)
        y = self.b.ev(view)
        if not (_is_number(x) and _is_number(y)):
            return None
        try:
            return self.fop(x, y)
        except (ArithmeticError, ValueError):
            return None


class Negate(Node):
    """Unary minus on a number; anything else gives None."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        x = self.node.ev(view)
        return -x if _is_number(x) else None


class Plus(Node):
    """Unary plus: the number itself, anything else gives None."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        x = self.node.ev(view)
        return x if _is_number(x) else None


class Not(Node):
    """Logical not; `not None` is True."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        return not self.node.ev(view)


class AsBool(Node):
    """`node` as True/False (for and/or over operands that may return other values)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def ev(self, view: Any) -> Any:
        return bool(self.node.ev(view))


class And(Node):
    """`a and b`: a's value if it is false, else b's (see `AsBool`)."""

    def __init__(self, a: Node, b: Node) -> None:
        self.a = a
        self.b = b

    def ev(self, view: Any) -> Any:
        return self.a.ev(view) and self.b.ev(view)


class Or(Node):
    """`a or b`: a's value if it is true, else b's (see `AsBool`)."""

    def __init__(self, a: Node, b: Node) -> None:
        self.a = a
        self.b = b

    def ev(self, view: Any) -> Any:
        return self.a.ev(view) or self.b.ev(view)


class AllOf(Node):
    """True if every operand is true (short-circuit)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)

    def ev(self, view: Any) -> Any:
        for n in self.nodes:  # noqa: SIM110 - a plain loop beats all() over a generator
            if not n.ev(view):
                return False
        return True


class AnyOf(Node):
    """True if some operand is true (short-circuit)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = tuple(nodes)

    def ev(self, view: Any) -> Any:
        for n in self.nodes:  # noqa: SIM110 - a plain loop beats any() over a generator
            if n.ev(view):
                return True
        return False


def and_(nodes: Sequence[Node]) -> Node:
    """Short-circuit and: the first false operand's value, else the last, for two or three
    operands; True/False for more (see `AsBool`)."""
    if len(nodes) == 2:
        return And(nodes[0], nodes[1])
    if len(nodes) == 3:  # `a and b and c` is `(a and b) and c`, value for value
        return And(And(nodes[0], nodes[1]), nodes[2])
    return AllOf(nodes)


def or_(nodes: Sequence[Node]) -> Node:
    """Short-circuit or: the first true operand's value, else the last, for two or three
    operands; True/False for more (see `AsBool`)."""
    if len(nodes) == 2:
        return Or(nodes[0], nodes[1])
    if len(nodes) == 3:
        return Or(Or(nodes[0], nodes[1]), nodes[2])
    return AnyOf(nodes)
