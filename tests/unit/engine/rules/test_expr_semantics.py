from __future__ import annotations

import math

import pytest

from streams.engine.rules import Expr, compile_expr

from .fakeview import FakeView

SEGMENTS = ("champions", "road-pro", "vip")


def ev(source: str, view: FakeView | None = None) -> object:
    return compile_expr(source, segments=SEGMENTS).fn(view or FakeView())


@pytest.mark.parametrize(
    ("price", "expected"),
    [(499.0, False), (500.0, True), (1999.0, True), (2000.0, False), (None, False)],
)
def test_range_chain(price: float | None, expected: bool) -> None:
    assert ev("500 <= price_band < 2000", FakeView(price_band=price)) is expected


def test_chains_have_python_semantics() -> None:
    assert ev("1 < 2 < 3") is True
    assert ev("1 < 3 < 2") is False
    assert ev("3 > 2 > 1 >= 1") is True
    assert ev("1 < orders < 5 < views + 10") is True
    assert ev("orders == 3 == rfm.f - 2") is True
    assert ev("1 < orders < 2") is False


def test_spec_example() -> None:
    src = 'traits.gender == "female" and affinity("road") >= 0.5 and 500 <= price_band < 2000'
    assert ev(src) is True
    assert ev(src, FakeView(traits={})) is False
    assert ev(src, FakeView(affinities={"road": 0.2})) is False


def test_boolean_logic_and_precedence() -> None:
    assert ev("orders >= 3 and views >= 5") is True
    assert ev("orders >= 4 or views >= 5") is True
    assert ev("orders >= 4 or views >= 6") is False
    assert ev("not orders >= 4") is True
    assert ev("not (orders >= 3 and views >= 5)") is False
    # and binds tighter than or; not tighter than and
    assert ev("true or false and false") is True
    assert ev("not false and false") is False
    assert ev("orders > 1 and views > 1 and cart_adds > 0 and consented") is True
    assert ev("orders > 9 or views > 9 or cart_adds > 9 or consented") is True
    assert ev("orders > 9 or views > 9 or cart_adds > 9") is False


def test_in_and_not_in() -> None:
    assert ev('top_category in ["road", "mountain"]') is True
    assert ev('top_category not in ["road", "mountain"]') is False
    assert ev('top_category in ["gravel"]') is False
    assert ev("orders in [1, 2, 3]") is True
    assert ev("orders not in [1, 2]") is True
    assert ev('"oa" in top_category') is True
    assert ev('top_category in "broad"') is True
    assert ev('"vip" in traits.tags', FakeView(traits={"tags": ["vip", "new"]})) is True
    assert ev('"vip" in traits.tags', FakeView(traits={"tags": "a vip"})) is True
    assert ev('"vip" in traits.tags', FakeView(traits={"tags": 3})) is False
    assert ev("traits.size in [1, 2]", FakeView(traits={"size": [1]})) is False
    assert ev("top_category in []") is False


def test_missing_values() -> None:
    view = FakeView(traits={}, price_band=None, top_category=None)
    assert ev('traits.gender == "female"', view) is False
    assert ev('traits.gender != "female"', view) is False
    assert ev("traits.age > 30", view) is False
    assert ev("not traits.vip", view) is True
    assert ev("not (traits.age > 30)", view) is True
    assert ev("price_band * 2 > 10", view) is False
    assert ev("price_band + 1 == null", view) is True
    assert ev("traits.email == null", view) is True
    assert ev("traits.email != null", view) is False
    assert ev("null == traits.email", view) is True
    assert ev('top_category in ["road"]', view) is False
    assert ev('"x" in traits.tags', view) is False
    assert ev("1 < price_band < 3", view) is False
    assert ev("distance_km(52.5, 13.4) < 50", FakeView(distance=None)) is False
    assert ev("affinity(traits.fav) > 0.1", view) is False


def test_traits_of_odd_types_never_raise() -> None:
    view = FakeView(traits={"age": "thirty", "tags": {"a": 1}, "n": True})
    assert ev("traits.age > 30", view) is False
    assert ev("traits.age + 1 > 30", view) is False
    assert ev("traits.n * 5 > 1", view) is False
    assert ev("traits.age == 30", view) is False
    assert ev('traits.age == "thirty"', view) is True
    assert ev("traits.tags < traits.age", view) is False
    assert ev("- traits.age < 0", view) is False


def test_arithmetic() -> None:
    assert ev("revenue / orders == 100") is True
    assert ev("orders * 2 + 1 == 7") is True
    assert ev("orders - 5 == -2") is True
    assert ev("-orders == -3") is True
    assert ev("+orders == 3") is True
    assert ev("2 + 3 * 4 == 14") is True
    assert ev("(2 + 3) * 4 == 20") is True
    assert ev("orders / 0 > 1") is False
    assert ev("orders / 0 == null") is True
    assert ev("orders / (views - 5) < 1") is False
    assert ev("1e308 * 10 > 1") is True  # inf, not an exception


def test_durations_compare_with_days() -> None:
    assert ev("days_since_last_order > 45d") is True
    assert ev("days_since_last_order > 8w") is False
    assert ev("days_since_last_seen < 36h") is True
    assert ev("days_since_last_order > 45", FakeView(days_since_last_order=math.inf)) is True


def test_functions_and_in_segment() -> None:
    view = FakeView(members={"champions"}, brands={"voltbike": 0.8})
    assert ev('in_segment("champions")', view) is True
    assert ev("in_segment('vip')", view) is False
    assert ev('not in_segment("road-pro")', view) is True
    assert ev('brand_affinity("voltbike") >= 0.6', view) is True
    assert ev("distance_km(52.52, 13.405) < 50", view) is True
    assert ev("distance_km(52.52, -13.405) < 50", view) is True
    assert ev('affinity("road") >= 0.5 and affinity("gravel") < 0.1', view) is True


def test_strings_literals() -> None:
    assert ev("traits.q == 'it\\'s'", FakeView(traits={"q": "it's"})) is True
    assert ev('traits.q == "a\\"b\\\\"', FakeView(traits={"q": 'a"b\\'})) is True
    assert ev('traits.q == "\\u00e9t\\u00e9"', FakeView(traits={"q": "été"})) is True
    assert ev("traits.flag == true", FakeView(traits={"flag": True})) is True
    assert ev("consented == false", FakeView(consented=False)) is True


def test_any_typed_top_level_and_constants() -> None:
    assert ev("traits.vip", FakeView(traits={"vip": True})) is True
    assert ev("true") is True
    assert ev("false") is False
    assert ev("consented") is True


def test_expr_carries_source_and_position() -> None:
    e = compile_expr("orders >= 3", segments=(), line=4, col=11)
    assert isinstance(e, Expr)
    assert (e.source, e.line, e.col) == ("orders >= 3", 4, 11)
    assert e(FakeView()) is True
