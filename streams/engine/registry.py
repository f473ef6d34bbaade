"""The features of the rules language, each declared once, and the kinds of change that move them.

Everything else derives from these tables: the names and types the rules compiler accepts
(`namespace`), which segments an event can alter (`segments`: a mask of kinds per segment), the
kinds each track event causes (`TRACK_CHANGES`, read by `core`), the features worth memoizing
(`rules.expr`), the generated reader nodes (`rules/readers.py`), the generated View properties
of plain state fields (`view.py`) and the feature list of the README.

Adding a feature is one entry in `FEATURES`, then `python -m streams.codegen` (a unit test fails
while the generated code is out of date):

- a plain read of a ConsumerState field: `feature("name", "number", "doc", ("kind",),
  field="state_field")`; the View property is generated.
- anything computed: the same without `field=`, and a property of that name (dots become
  underscores: `rfm.r` is read as `View.rfm_r`) written by hand in `view.py`. For example a
  fitted model's expected order value, which orders move and time does not:
  `feature("expected_spend", "number", "Gamma-Gamma expected order value", ("orders",),
  computed=True)` here, and `def expected_spend(self) -> float` as a View property.

Declare what moves it honestly: `moves` are the kinds of change (`KINDS`) that can alter its
value; `time` says whether its value also changes with time alone ("crossing": at a time one
can compute, counted in days from the event time in the state field `since`; "cadence": only a
periodic re-check sees it, for the consumers `drifts_for` names); `population` that it is
relative to other consumers; `computed` that the View computes it anew on every read (shared
uses in a rule set are then memoized).

`rfm.*` are quintile scores against every buyer the process holds (all partitions in replay:
`population.Population`), with the tie rule of `sketches.Histogram._compute` (a tied value is
never split, no level is skipped); `rfm.m` scores total revenue (net of refunds), not the
average order value (that is `avg_order_value`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Type = Literal["number", "days", "string", "bool", "any"]
"""`days` is a number of days: it compares with numbers and with duration literals (in days)."""

Time = Literal["none", "crossing", "cadence"]


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of change an event can make to a consumer's state (one bit of a change mask).
    `track` are the track events that cause it; the others come from context and traits."""

    name: str
    doc: str
    track: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Feature:
    """A feature rules read as a name (`views`, `rfm.r`); see the module docstring."""

    name: str  # as written in rules, e.g. "rfm.r"
    attr: str  # the View property that reads it, e.g. "rfm_r"
    type: Type
    doc: str
    moves: frozenset[str]  # kinds of change that can alter it
    time: Time
    since: str | None  # time == "crossing": the state field (an event time) it counts from
    population: bool  # relative to the other consumers (moves when they do)
    field: str | None  # a plain read of this ConsumerState field (generated View property)
    computed: bool  # computed anew on every read
    #: time == "cadence": which consumers time can move it for ("always", "ordered", "buyer",
    #: "repeat_buyer"; see timeplan.GUARDS): only they get periodic re-checks
    drifts_for: str = "always"


@dataclass(frozen=True, slots=True)
class Function:
    """A function rules call (`affinity("road")`); `members`: it reads segment memberships."""

    name: str
    params: tuple[Type, ...]
    returns: Type
    doc: str
    example: str  # a sample call, for error messages
    moves: frozenset[str]
    members: bool = False


def feature(
    name: str,
    type_: Type,
    doc: str,
    moves: tuple[str, ...] = (),
    *,
    time: Time = "none",
    since: str | None = None,
    population: bool = False,
    field: str | None = None,
    computed: bool = False,
    drifts_for: str = "always",
) -> Feature:
    """A Feature read through the View property named like it (dots become underscores)."""
    attr = name.replace(".", "_")
    return Feature(name, attr, type_, doc, frozenset(moves), time, since, population, field,
                   computed, drifts_for)


KINDS: tuple[Kind, ...] = (
    Kind("views", "a product view", ("Product Viewed", "Product Clicked")),
    Kind("cart", "items added to or gone from the cart",
         ("Product Added", "Product Removed", "Order Completed")),
    Kind("orders", "orders, refunds, cancellations",
         ("Order Completed", "Order Refunded", "Order Cancelled")),
    Kind("price", "prices seen or paid", ("Product Viewed", "Product Clicked", "Order Completed")),
    Kind("affinity", "interest in categories and brands",
         ("Product Viewed", "Product Clicked", "Product List Viewed", "Order Completed")),
    Kind("location", "country, city or coordinates (context.location, traits)"),
    Kind("traits", "traits (identify, or traits on any event)"),
    Kind("consent", "the marketing consent (context.consent, traits)"),
    Kind("events", "every event"),
)

FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        feature("views", "number", "Product Viewed / Clicked events", ("views",), field="views"),
        feature("cart_adds", "number", "Product Added events", ("cart",), field="cart_adds"),
        feature("orders", "number", "completed orders, less refunded/cancelled", ("orders",),
                field="orders"),
        feature("revenue", "number", "sum of order revenue", ("orders",), field="revenue"),
        feature("avg_order_value", "number", "revenue / orders (0 if none)", ("orders",)),
        feature("discount_share", "number", "share of orders with a discount", ("orders",)),
        feature("price_band", "number", "median price of viewed and bought items", ("price",)),
        feature("top_category", "string", "category of highest affinity", ("affinity",),
                computed=True),
        feature("days_since_last_order", "days", "days since the last order (large if never)",
                ("orders",), time="crossing", since="last_order"),
        feature("days_since_last_seen", "days", "days since the last event", ("events",),
                time="crossing", since="last_seen"),
        feature("rfm.r", "number",
                "recency quintile 1..5 of the last order's day (0 without orders)",
                ("orders",),
                time="cadence", population=True, drifts_for="buyer"),
        feature("rfm.f", "number",
                "frequency quintile 1..5 of `orders` (0 without orders)",
                ("orders",),
                time="cadence", population=True, drifts_for="buyer"),
        feature("rfm.m", "number",
                "monetary quintile 1..5 of total revenue, not average (0 without orders)",
                ("orders",),
                time="cadence", population=True, drifts_for="buyer"),
        feature("p_alive", "number", "BG/NBD probability the consumer is alive", ("orders",),
                time="cadence", computed=True, drifts_for="repeat_buyer"),
        feature("expected_orders_90d", "number", "BG/NBD expected orders, next 90 days",
                ("orders",), time="cadence", computed=True),
        feature("expected_spend", "number", "Gamma-Gamma expected value of the next order",
                ("orders",), computed=True),
        feature("clv_365d", "number",
                "expected revenue over the next 365 days (expected orders x expected spend)",
                ("orders",), time="cadence", computed=True),
        feature("country", "string", "context.location or traits", ("location", "traits"),
                field="country"),
        feature("city", "string", "context.location or traits", ("location", "traits"),
                field="city"),
        feature("consented", "bool", "marketing consent", ("consent",), field="consented"),
        feature("cart_value", "number", "value of items added and not bought", ("cart",),
                computed=True),
        feature("events", "number", "all events of the consumer", ("events",), field="events"),
    )
}

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("affinity", ("string",), "number", "time-decayed share of views in a category",
                 'affinity("road")', frozenset({"affinity"})),
        Function("brand_affinity", ("string",), "number",
                 "time-decayed share of views of a brand", 'brand_affinity("voltbike")',
                 frozenset({"affinity"})),
        Function("distance_km", ("number", "number"), "number", "km from the last known location",
                 "distance_km(52.52, 13.405)", frozenset({"location"})),
        Function("in_segment", ("string",), "bool",
                 "membership, as evaluated so far in file order", 'in_segment("champions")',
                 frozenset(), members=True),
    )
}

TRAITS_PREFIX = "traits."
TRAITS_KINDS: frozenset[str] = frozenset({"traits"})
"""What moves a `traits.*` read."""

#: the kinds each track event causes (besides "events", which every event causes)
TRACK_CHANGES: dict[str, tuple[str, ...]] = {
    event: tuple(k.name for k in KINDS if event in k.track)
    for event in dict.fromkeys(e for k in KINDS for e in k.track)
}


def always(name: str) -> bool:
    """Whether a read of feature or function `name` can change without any event of the
    consumer (time, the population, other segments): segments reading it always run."""
    f = FEATURES.get(name)
    if f is not None:
        return f.time != "none" or f.population
    fn = FUNCTIONS.get(name)
    return fn is None or fn.members


def moved_by(name: str) -> frozenset[str]:
    """The kinds of change that can alter a read of feature or function `name`."""
    f = FEATURES.get(name)
    if f is not None:
        return f.moves
    fn = FUNCTIONS.get(name)
    return fn.moves if fn is not None else frozenset()
