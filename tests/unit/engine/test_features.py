"""Features as rules read them."""

from __future__ import annotations

import pytest

from streams.engine.clv import CustomerModels
from streams.engine.namespace import FEATURES
from streams.engine.population import Population
from streams.engine.rules import compile_expr
from streams.engine.rules.nodes import Feature, IsNull
from streams.engine.sketches import Histogram, price_add, price_median
from streams.engine.state import ConsumerState
from streams.engine.view import View
from tests.unit.engine.helpers import DAY, T0, engine, identify, run, track


def view_of(eng, cid, now):
    state = eng.consumer(cid)
    return View(state, now, eng.population, CustomerModels(), set(state.segments))


def first_visit():
    """A view, a cart add and a discounted order of consumer "u"."""
    return [
        track("u", "Product Viewed", T0, price=100, category="Road", brand="Velocita"),
        track("u", "Product Added", T0 + 1, product_id="p", price=100),
        track("u", "Order Completed", T0 + 2, order_id="o1", revenue=100, discount=10),
    ]


def test_counters_revenue_discount_and_refund():
    eng = engine("segments: []\n")
    run(
        eng,
        *first_visit(),
        track("u", "Order Completed", T0 + 3, order_id="o2", total=300),
        track("u", "Order Completed", T0 + 4, order_id="o2", total=300),  # same order again
        track("u", "Order Completed", T0 + 5, order_id="o3",
              products=[{"product_id": "a", "price": 20, "quantity": 2}]),
        track("u", "Order Cancelled", T0 + 6, order_id="o3"),
    )
    v = view_of(eng, "u", T0 + 2 * DAY)
    assert v.views == 1 and v.cart_adds == 1
    assert v.orders == 2 and v.revenue == 400
    assert v.avg_order_value == 200
    assert v.discount_share == 0.5
    assert v.days_since_last_order == pytest.approx(2, rel=1e-3)
    assert v.affinity("road") == 1.0 and v.brand_affinity("velocita") == 1.0
    assert v.top_category in ("road", "a")


def test_affinity_is_time_decayed_share():
    eng = engine("segments: []\nsettings:\n  affinity_half_life: 7d\n  max_clock_skew: 30d\n")
    run(eng, *[track("u", "Product Viewed", T0 + i, category="road") for i in range(3)])
    run(eng, *[track("u", "Product Viewed", T0 + 14 * DAY + i, category="mountain")
               for i in range(3)])
    v = view_of(eng, "u", T0 + 14 * DAY)
    # road views are two half-lives old: weight 3/4 against mountain's 3
    assert v.affinity("mountain") == pytest.approx(3 / 3.75, rel=1e-3)
    assert v.top_category == "mountain"


def test_price_band_is_median_within_sketch_accuracy():
    sketch: dict[int, float] = {}
    prices = [float(p) for p in range(100, 3000, 7)]
    for p in prices:
        price_add(sketch, p)
    assert len(sketch) <= 24
    true_median = sorted(prices)[len(prices) // 2]
    assert price_median(sketch) == pytest.approx(true_median, rel=0.06)


def test_rules_read_every_feature_of_the_view_as_its_attribute():
    eng = engine("segments: []\n")
    run(eng, *first_visit())
    v = view_of(eng, "u", T0 + 2 * DAY)
    for name, f in FEATURES.items():
        node = compile_expr(f"{name} == null", segments=()).fn
        assert isinstance(node, IsNull) and type(node.node) is not Feature  # a native read
        assert node.node.ev(v) == getattr(v, f.attr), name


def test_location_traits_and_distance():
    eng = engine("segments: []\n")
    ev = track("u", "Page", T0)
    ev["context"] = {"location": {"country": "DE", "city": "Berlin", "latitude": 52.52,
                                  "longitude": 13.405}}
    run(eng, ev, identify("u", T0 + 1, gender="female", email="u@example.com"))
    v = view_of(eng, "u", T0 + 2)
    assert (v.country, v.city) == ("DE", "Berlin")
    assert v.trait("gender") == "female"
    assert v.distance_km(48.137, 11.575) == pytest.approx(504, rel=0.02)  # Berlin-Munich


@pytest.mark.parametrize(
    "location",
    [
        {"country": "DE", "city": "Berlin", "latitude": 52.52, "longitude": 13.405},  # usual
        {"country": "DE", "city": "Berlin", "latitude": 52.52, "longitude": 13},  # an int
        {"country": "DE", "city": "", "latitude": 95.0, "longitude": 13.405},  # out of range
        {"country": None, "city": "Berlin", "latitude": None, "longitude": 13.405},
    ],
)
def test_a_location_sets_the_same_fields_whether_parsed_inline_or_read_from_the_context(
    location,
):
    before = {"country": "FR", "city": "Paris", "latitude": 48.85, "longitude": 2.35}
    eng = engine("segments: []\n")
    first, then = track("u", "Page", T0), track("u", "Page", T0 + 1)
    first["context"], then["context"] = {"location": before}, {"location": location}
    run(eng, first, then)
    state = eng.consumer("u")
    assert state is not None
    want = (
        location["country"] or "FR",
        location["city"] or "Paris",
        *(
            (float(location["latitude"]), float(location["longitude"]))
            if location["latitude"] is not None and abs(location["latitude"]) <= 90
            else (48.85, 2.35)
        ),
    )
    assert (state.country, state.city, state.lat, state.lon) == want


def test_rfm_quintiles_against_the_population():
    eng = engine("segments: []\n")
    for i in range(100):
        for k in range(i % 5 + 1):
            run(eng, track(f"u{i}", "Order Completed", T0 + i * DAY / 10 + k,
                           order_id=f"o{i}-{k}", revenue=10 * (i + 1)))
    top = view_of(eng, "u99", T0 + 20 * DAY)
    low = view_of(eng, "u0", T0 + 20 * DAY)
    assert (top.rfm_r, top.rfm_f, top.rfm_m) == (5, 5, 5)
    assert (low.rfm_r, low.rfm_f, low.rfm_m) == (1, 1, 1)
    never = ConsumerState("n", T0)
    assert Population().rfm(never) == (0, 0, 0)


def test_histogram_signed_updates():
    h = Histogram()
    for b in range(10):
        h.add(b)
    h.add(3, -1)
    assert h.total == 9 and 3 not in h.counts

