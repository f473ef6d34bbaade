"""The feature registry: every declared feature is readable, typed, read natively and honest
about what moves it; what derives from it is up to date."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from streams import codegen
from streams.engine.clv import CustomerModels
from streams.engine.registry import FEATURES, FUNCTIONS, KINDS, TRACK_CHANGES, always
from streams.engine.rules import RulesError, compile_expr
from streams.engine.rules.expr import COMPUTED_FEATURES
from streams.engine.rules.nodes import Feature
from streams.engine.rules.readers import _READERS
from streams.engine.segments import ALWAYS, FEATURE_KINDS, SegmentPlan, expression_kinds
from streams.engine.state import FIELDS, ConsumerState
from streams.engine.view import View
from tests.unit.engine.helpers import DAY, HOUR, T0, engine, identify, rules, run, track

ROOT = Path(__file__).resolve().parents[3]
KIND_NAMES = {k.name for k in KINDS}
#: an expression of each type that compiles, and one that must not
TYPED = {
    "number": ("{} > 1", '{} == "x"'),
    "days": ("{} > 1d", '{} == "x"'),
    "string": ('{} == "x"', "{} > 1"),
    "bool": ("{} and true", "{} > 1"),
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_feature_compiles_in_rules_with_its_declared_type(name: str) -> None:
    ok, bad = TYPED[FEATURES[name].type]
    assert compile_expr(ok.format(name), segments=()).reads == {name}
    with pytest.raises(RulesError):
        compile_expr(bad.format(name), segments=())


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_feature_is_a_view_property_read_by_its_own_reader_node(name: str) -> None:
    attr = FEATURES[name].attr
    assert inspect.isdatadescriptor(View.__dict__.get(attr))  # a property (compiled: getset)
    reader = compile_expr(f"{name} == null", segments=()).fn.node  # type: ignore[attr-defined]
    assert type(reader) is _READERS[attr] and type(reader) is not Feature


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_is_a_view_method_with_an_example_that_compiles(name: str) -> None:
    fn = FUNCTIONS[name]
    assert callable(getattr(View, name, None))
    assert compile_expr(f"{fn.example} == null", segments=("champions",)).reads == {name}


def test_every_feature_says_what_moves_it_in_known_kinds() -> None:
    state_fields = {f.name for f in FIELDS}
    for f in FEATURES.values():
        assert f.moves <= KIND_NAMES, f.name
        assert f.moves or f.time != "none" or f.population, f.name
        assert (f.time == "crossing") == (f.since is not None), f.name
        assert f.since is None or f.since in state_fields, f.name
        assert f.field is None or f.field in state_fields, f.name
    for fn in FUNCTIONS.values():
        assert fn.moves <= KIND_NAMES and (fn.moves or fn.members), fn.name


def test_track_events_cause_the_kinds_that_name_them() -> None:
    assert set(TRACK_CHANGES["Product Viewed"]) == {"views", "price", "affinity"}
    assert set(TRACK_CHANGES["Order Completed"]) == {"orders", "price", "affinity", "cart"}
    assert set(TRACK_CHANGES["Product Removed"]) == {"cart"}
    assert "Page Viewed" not in TRACK_CHANGES


def test_only_features_computed_on_every_read_are_worth_memoizing() -> None:
    assert {"p_alive", "expected_orders_90d", "expected_spend", "clv_365d", "top_category",
            "cart_value"} == COMPUTED_FEATURES


def kinds(source: str, segments: tuple[str, ...] = ()) -> frozenset[str]:
    return expression_kinds(compile_expr(source, segments=segments))


def test_expression_kinds_come_from_what_the_compiled_expression_reads() -> None:
    assert kinds('views > 3 and traits.x == "orders"') == {"views", "traits"}
    assert kinds('affinity(top_category) > 0.2 or country == "DE"') == {
        "affinity", "location", "traits"}
    assert kinds("distance_km(traits.lat, 13.4) < 5") == {"location", "traits"}


@pytest.mark.parametrize(
    "source", ["days_since_last_order > 45d", "rfm.r >= 4", "p_alive < 0.3", 'in_segment("a")']
)
def test_expressions_that_move_without_an_event_always_run(source: str) -> None:
    assert ALWAYS in kinds(f"views > 1 and {source}", ("a",))


def test_a_segment_reading_only_views_is_not_evaluated_for_a_cart_change() -> None:
    plan = SegmentPlan.of(rules("segments:\n  - {name: v, when: views > 3}\n"
                                "  - {name: c, when: cart_value > 3}\n"))
    from streams.engine.core import TRACK_MASKS

    assert [s.name for s in plan.steps_for(TRACK_MASKS["Product Added"])] == ["c"]
    assert [s.name for s in plan.steps_for(TRACK_MASKS["Product Viewed"])] == ["v"]


def _values(view: View) -> dict[str, Any]:
    """Every feature and function that only events move, as the rules read them."""
    out: dict[str, Any] = {f.name: getattr(view, f.attr) for f in FEATURES.values()
                           if not always(f.name)}
    out["affinity"] = (view.affinity("road"), view.affinity("mountain"))
    out["brand_affinity"] = (view.brand_affinity("rapid"), view.brand_affinity("volt"))
    out["distance_km"] = view.distance_km(52.5, 13.4)
    return out


SAMPLE_EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("Product Viewed", {"price": 10, "category": "Mountain", "brand": "Volt"}),
    ("Product Clicked", {"price": 40, "category": "Road", "brand": "Rapid"}),
    ("Product List Viewed", {"category": "Mountain"}),
    ("Product Added", {"product_id": "p9", "price": 20}),
    ("Product Removed", {"product_id": "p1"}),
    ("Order Completed", {"order_id": "o9", "revenue": 50, "coupon": "X",
                         "products": [{"product_id": "p1", "price": 50, "category": "Road"}]}),
    ("Order Refunded", {"order_id": "o1"}),
    ("Order Cancelled", {"order_id": "o1"}),
    ("Something Else", {"price": 1}),
]


@pytest.mark.parametrize(("name", "props"), SAMPLE_EVENTS, ids=[n for n, _ in SAMPLE_EVENTS])
def test_a_track_event_moves_only_features_of_the_kinds_it_declares(
    name: str, props: dict[str, Any]
) -> None:
    eng = engine("segments: []\n")
    history = track("u", "Product Viewed", T0, price=100, category="Road", brand="Rapid")
    history["context"] = {"location": {"country": "DE", "latitude": 52.0, "longitude": 13.0}}
    run(eng, history,
        identify("u", T0 + 1, email="u@example.com", city="Berlin"),
        track("u", "Product Added", T0 + 2, product_id="p1", price=100),
        track("u", "Order Completed", T0 + 3, order_id="o1", revenue=100))
    state = eng.consumer("u")
    assert isinstance(state, ConsumerState)
    before_state = ConsumerState.from_bytes(state.to_bytes())  # a copy
    run(eng, track("u", name, T0 + HOUR, **props))
    now = T0 + DAY
    before = _values(View(before_state, now, eng.population, CustomerModels(), set()))
    after = _values(View(state, now, eng.population, CustomerModels(), set()))
    declared = {"events", *TRACK_CHANGES.get(name, ())}
    moved = {k for k in before if before[k] != after[k]}
    assert moved, "the event changed nothing a rule reads"
    for k in moved:
        assert FEATURE_KINDS[k] & declared, f"{name} moved {k} but causes only {declared}"


def test_generated_code_and_readme_are_up_to_date() -> None:
    """Run `python -m streams.codegen` after changing the registry or state.FIELDS."""
    assert [p.relative_to(ROOT).as_posix() for p in codegen.stale(ROOT)] == []


def test_every_feature_and_function_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for f in FEATURES.values():
        assert f"| `{f.name}` | {f.type} | {f.doc} |" in readme, f.name
    for fn in FUNCTIONS.values():
        assert f"| `{fn.example}` |" in readme, fn.name
