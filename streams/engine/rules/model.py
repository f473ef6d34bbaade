"""The compiled rules the engine consumes: immutable, validated, expressions ready to call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from streams.engine.clv import CustomerModels
from streams.engine.namespace import FeatureView
from streams.engine.rules.nodes import Node

TriggerKind = Literal["retargeting", "winback"]
TRIGGER_KINDS: tuple[TriggerKind, ...] = ("retargeting", "winback")

DAY = 86400.0
DEFAULT_BGNBD: tuple[float, float, float, float] = (0.243, 4.414, 0.793, 2.426)


@dataclass(frozen=True, slots=True)
class Expr:
    """A compiled expression: `fn(view)` (or `fn.ev(view)`) evaluates `source` and never raises
    for missing data."""

    source: str
    fn: Node = field(compare=False, repr=False)
    line: int
    col: int
    #: the features and functions it reads (registry names; `traits` for any trait)
    reads: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def __call__(self, view: FeatureView) -> Any:
        return self.fn.ev(view)


@dataclass(frozen=True, slots=True)
class Segment:
    """A micro-segment: consumers for whom `when` is true. `index` is the position in the file."""

    name: str
    when: Expr
    index: int


@dataclass(frozen=True, slots=True)
class OfferTier:
    """One offer of a trigger; `when is None` always matches. The first matching tier wins."""

    when: Expr | None
    offer: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """Armed by any event in `on`, fires `wait` seconds after the last arming unless an event in
    `unless` came in between; at firing, `when` (the rule's `if`) must hold."""

    name: str
    kind: TriggerKind
    on: frozenset[str]
    wait: float  # seconds
    unless: frozenset[str]
    when: Expr | None  # the `if`
    offers: tuple[OfferTier, ...]  # `offer: x` becomes one tier with when=None
    cooldown: float | None  # seconds
    index: int
    #: seconds after firing in which an order is attributed to it (None: the settings' default)
    attribution_window: float | None = None


@dataclass(frozen=True, slots=True)
class Suppression:
    """Limits across triggers: at most `cap_max` per `cap_per` seconds, `holdout` share held out
    of each campaign, `global_control` share of consumers held out of every campaign."""

    cap_max: int | None = None
    cap_per: float | None = None  # seconds
    holdout: float = 0.0  # 0..1
    global_control: float = 0.0  # 0..1


@dataclass(frozen=True, slots=True)
class Settings:
    """Engine settings from the optional top-level `settings:` mapping (durations in seconds)."""

    allowed_lateness: float = 0.0
    dedupe_window: float = DAY
    affinity_half_life: float = 30 * DAY
    bgnbd: tuple[float, float, float, float] = DEFAULT_BGNBD  # r, alpha, a, b (weeks)
    #: cadence of the re-checks of segments that time moves without an exact crossing
    reevaluate_every: float = DAY
    #: what p_alive, expected_orders_90d, expected_spend and clv_365d use: `models:` (a fitted
    #: models file) and `discount_rate`, else `bgnbd` and the CDNOW spend model
    models: CustomerModels = field(default_factory=CustomerModels)
    max_clock_skew: float = DAY  # an event further ahead of the watermark is refused
    #: a profile with no event for this long is erased like `forget` (0: never)
    profile_ttl: float = 0.0
    #: orders this long after a trigger fired are attributed to it (a trigger's own
    #: `attribution_window` overrides it)
    attribution_window: float = 7 * DAY


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole rules file. `version` is a short stable hash of the file's text."""

    segments: tuple[Segment, ...]
    triggers: tuple[Trigger, ...]
    suppression: Suppression
    settings: Settings
    version: str
    path: str
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, Trigger] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", tuple(s.name for s in self.segments))
        object.__setattr__(self, "_by_name", {t.name: t for t in self.triggers})

    def segment_names(self) -> tuple[str, ...]:
        """Segment names in file order (computed once)."""
        return self._names

    def trigger(self, name: str) -> Trigger:
        """The trigger called `name`; KeyError if there is none."""
        return self._by_name[name]


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """One problem in a rules file, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class RulesError(ValueError):
    """Rules that cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
