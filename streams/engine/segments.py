"""Segment membership: evaluate the segments of the rules in file order, report the changes.

Every segment is (re-)evaluated on every event of the consumer, in effect. As an optimization
that cannot change a result, a segment whose inputs the event could not have changed keeps its
membership without running: each segment's inputs are read off its expression, and each event
names the kinds of features it touches. Segments reading time- or population-relative features
(days_since_*, rfm.*, p_alive, ...) or in_segment() always run.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field

from streams.engine.namespace import FEATURES, FUNCTIONS
from streams.engine.rules import RuleSet
from streams.engine.rules.nodes import Node
from streams.engine.view import View

log = logging.getLogger(__name__)

ALWAYS = "always"
# what each feature or function depends on, as kinds of change an event may cause
FEATURE_KINDS: dict[str, frozenset[str]] = {
    "views": frozenset({"views"}),
    "cart_adds": frozenset({"cart"}),
    "cart_value": frozenset({"cart"}),
    "orders": frozenset({"orders"}),
    "revenue": frozenset({"orders"}),
    "avg_order_value": frozenset({"orders"}),
    "discount_share": frozenset({"orders"}),
    "expected_spend": frozenset({"orders"}),
    "price_band": frozenset({"price"}),
    "top_category": frozenset({"affinity"}),
    "affinity": frozenset({"affinity"}),
    "brand_affinity": frozenset({"affinity"}),
    "country": frozenset({"location", "traits"}),
    "city": frozenset({"location", "traits"}),
    "distance_km": frozenset({"location"}),
    "consented": frozenset({"consent"}),
    "events": frozenset({"events"}),
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def expression_kinds(source: str) -> frozenset[str]:
    """Kinds of change that can alter the value of an (already validated) expression."""
    kinds: set[str] = set()
    for word in _WORD.findall(_STRING.sub(" ", source)):
        if word.startswith("traits."):
            kinds.add("traits")
        elif word in FEATURE_KINDS:
            kinds |= FEATURE_KINDS[word]
        elif word in FEATURES or word in FUNCTIONS:
            kinds.add(ALWAYS)  # time, population or other segments: no shortcut
    return frozenset(kinds)


#: every kind of change, one bit each: an event's changes are an int mask of these
KINDS = ("views", "cart", "orders", "price", "affinity", "location", "traits", "consent", "events")
KIND_BITS: dict[str, int] = {kind: 1 << i for i, kind in enumerate(KINDS)}
EVERYTHING = -1  # all bits: the mask of a segment that always runs


def mask_of(kinds: Collection[str]) -> int:
    """The change mask of some kinds of change."""
    mask = 0
    for kind in kinds:
        mask |= KIND_BITS[kind]
    return mask


class Step:
    """A segment as the hot loop evaluates it (an object: a tuple's items are type-checked when
    unpacked)."""

    __slots__ = ("mask", "name", "when")

    def __init__(self, name: str, when: Node, mask: int) -> None:
        self.name = name
        self.when = when
        self.mask = mask  # the kinds of change it depends on (EVERYTHING: it always runs)


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """The segments of a rule set with what each depends on, ready for the hot loop."""

    steps: tuple[Step, ...]  # all of them, in file order
    names: tuple[str, ...]
    name_set: frozenset[str]
    #: a checksum of the segments' names and expressions: a consumer whose state carries
    #: another one was last evaluated under other rules, and gets a full evaluation
    signature: int
    _by_mask: dict[int, tuple[Step, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, rules: RuleSet) -> SegmentPlan:
        steps = []
        for seg in rules.segments:
            kinds = expression_kinds(seg.when.source)
            mask = EVERYTHING if ALWAYS in kinds else mask_of(kinds)
            steps.append(Step(seg.name, seg.when.fn, mask))
        names = tuple(s.name for s in rules.segments)
        text = "\n".join(f"{s.name}\0{s.when.source}" for s in rules.segments)
        signature = zlib.crc32(text.encode()) or 1
        return cls(tuple(steps), names, frozenset(names), signature)

    def steps_for(self, changed: int) -> tuple[Step, ...]:
        """The segments an event with these changes may alter, in file order."""
        try:
            return self._by_mask[changed]
        except KeyError:
            run = tuple(s for s in self.steps if s.mask == EVERYTHING or s.mask & changed)
            self._by_mask[changed] = run
            return run


def evaluate(
    plan: SegmentPlan, view: View, changed: int | None = None
) -> tuple[list[str], list[str]]:
    """Re-evaluate segments for `view`; return (entered, exited), both in file order.

    `changed` is the mask (`KIND_BITS`) of the kinds of change of this event (None: everything
    may have changed). `view.members` holds the current memberships and is updated in place as
    segments are evaluated, which is what `in_segment()` reads. Segments no longer in the rules
    are exited (after the others).
    """
    members = view.members
    stale: list[str] | None = None  # (no list made in the common case)
    if not members <= plan.name_set:
        stale = sorted(members - plan.name_set)
        members.difference_update(stale)
    # (steps_for() inlined for the common case of a mask seen before)
    steps = plan.steps if changed is None else plan._by_mask.get(changed) or plan.steps_for(changed)
    entered: list[str] = []
    exited: list[str] = []
    for step in steps:
        name = step.name
        try:
            inside = step.when.ev(view)
        except Exception:  # compiled rules are total; a bug here must not stop the stream
            log.exception("segment %s failed to evaluate", name)
            inside = False
        if inside:
            if name not in members:
                members.add(name)
                entered.append(name)
        elif name in members:
            members.remove(name)
            exited.append(name)
    if stale:
        exited.extend(stale)
    return entered, exited


def ordered(plan: SegmentPlan, members: set[str]) -> list[str]:
    """Memberships in file order (what we store and put on triggers)."""
    return [n for n in plan.names if n in members]
