"""Property tests: the compiler is total, and compiled code only touches the namespace."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.engine.namespace import FEATURES
from streams.engine.rules import RulesError, compile_expr

from .fakeview import ALLOWED, GuardedView, armed, seen_by

SEGMENTS = ("champions", "road-pro", "vip")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMERIC_FEATURES = sorted(n for n, f in FEATURES.items() if f.type in ("number", "days"))
STRING_FEATURES = sorted(n for n, f in FEATURES.items() if f.type == "string")
BOOL_FEATURES = sorted(n for n, f in FEATURES.items() if f.type == "bool")
TRAITS = st.sampled_from(["traits.gender", "traits.age", "traits.tags", "traits.first_name"])
TOKENS = [
    "orders",
    "rfm.r",
    "traits.x",
    "affinity",
    "in_segment",
    "(",
    ")",
    "[",
    "]",
    ",",
    "'road'",
    '"x"',
    "1",
    "2.5",
    "-",
    "+",
    "*",
    "/",
    "7d",
    "30m",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not",
    "and",
    "or",
    "true",
    "false",
    "null",
    "__class__",
    ".",
    "=",
    "'",
    '"',
    "\\",
    "1e999",
]


def _str_lit() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_characters='\\"\n\r'), max_size=8).map(
        lambda s: f'"{s}"'
    )


def _num_lit() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(10**6), 10**6).map(str),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
        st.sampled_from(["7d", "30m", "12h", "2w", "45s", "1.5d", "0"]),
    )


numbers = st.recursive(
    st.one_of(
        st.sampled_from(NUMERIC_FEATURES),
        _num_lit(),
        TRAITS,
        st.sampled_from(["affinity", "brand_affinity"]).flatmap(
            lambda f: _str_lit().map(lambda s: f"{f}({s})")
        ),
        st.tuples(_num_lit(), _num_lit()).map(lambda t: f"distance_km({t[0]}, {t[1]})"),
    ),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"-{x}"),
    ),
    max_leaves=4,
)
strings = st.one_of(st.sampled_from(STRING_FEATURES), _str_lit(), TRAITS)
ORDER_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])


def _comparison() -> st.SearchStrategy[str]:
    chain = st.lists(st.tuples(ORDER_OPS, numbers), min_size=1, max_size=3)
    return st.one_of(
        st.tuples(numbers, chain).map(lambda t: t[0] + "".join(f" {o} {n}" for o, n in t[1])),
        st.tuples(strings, st.sampled_from(["==", "!="]), strings).map(" ".join),
        st.tuples(strings, st.sampled_from(["in", "not in"]), st.lists(_str_lit(), max_size=4)).map(
            lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"
        ),
        st.tuples(numbers, st.sampled_from(["in", "not in"]), st.lists(_num_lit(), max_size=4)).map(
            lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"
        ),
        st.tuples(strings, st.sampled_from(["in", "not in"]), strings).map(" ".join),
        TRAITS.map(lambda t: f"{t} == null"),
        st.sampled_from(SEGMENTS).map(lambda s: f"in_segment('{s}')"),
        st.sampled_from([*BOOL_FEATURES, "true", "false"]),
    )


conditions = st.recursive(
    _comparison(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda x: f"not {x}"),
    ),
    max_leaves=6,
)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)


def _feature_value(type_: str) -> st.SearchStrategy[object]:
    if type_ == "string":
        return st.one_of(st.none(), st.text(max_size=5))
    if type_ == "bool":
        return st.one_of(st.none(), st.booleans())
    return st.one_of(st.none(), st.integers(-1000, 1000), st.floats())


views = st.builds(
    GuardedView,
    st.fixed_dictionaries({f.attr: _feature_value(f.type) for f in FEATURES.values()}),
    st.dictionaries(st.sampled_from(["gender", "age", "tags", "first_name"]), json_values),
    st.one_of(st.none(), st.floats(), st.booleans()),
)


@FAST
@given(st.text(max_size=60))
def test_any_text_compiles_or_raises_rules_error(source: str) -> None:
    try:
        compile_expr(source, segments=SEGMENTS)
    except RulesError as err:
        assert err.issues and all(i.line >= 1 and i.col >= 1 for i in err.issues)


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join))
def test_token_soup_compiles_or_raises_rules_error(source: str) -> None:
    try:
        compile_expr(source, segments=SEGMENTS)
    except RulesError as err:
        assert err.issues


@FAST
@given(conditions, views)
def test_well_formed_expressions_evaluate_and_stay_in_the_namespace(
    source: str, view: GuardedView
) -> None:
    expr = compile_expr(source, segments=SEGMENTS)
    armed(view, True)
    try:
        result = expr.fn(view)
        again = compile_expr(source, segments=SEGMENTS).fn(view)
    finally:
        armed(view, False)
    assert result is None or isinstance(result, bool)
    assert set(seen_by(view)) <= ALLOWED
    assert again == result or (isinstance(result, float) and math.isnan(result))


@pytest.mark.parametrize(
    "source",
    [
        '__import__("os")',
        "__import__('os').system('true')",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "traits.__class__",
        "traits.__class__ == 1",
        "traits._secret == 1",
        "orders.__class__",
        "orders.__class__ == 1",
        "affinity.__globals__",
        "in_segment('x').__class__",
        "getattr(orders, '__class__')",
        "open('/etc/passwd')",
        "exec('1')",
        "compile('1', 'f', 'eval')",
        "'a'.join(['b'])",
        "orders; import os",
        "[].__class__",
    ],
)
def test_python_is_refused(source: str) -> None:
    with pytest.raises(RulesError):
        compile_expr(source, segments=SEGMENTS)
