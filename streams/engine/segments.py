"""Segment membership: evaluate the segments of the rules in file order, report the changes.

Every segment is (re-)evaluated on every event of the consumer, in effect. As an optimization
that cannot change a result, a segment whose inputs the event could not have changed keeps its
membership without running: each segment's inputs are what its compiled expression reads, each
feature declares the kinds of change that move it (`registry`), and each event names the kinds
of change it causes. Segments reading time- or population-relative features (days_since_*,
rfm.*, p_alive, ...) or in_segment() always run.

Segments that time alone can change also carry a time plan (streams.engine.timeplan): after an
evaluation, `SegmentPlan.next_recheck(view)` says when the consumer needs a re-check.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field

from streams.engine.registry import FEATURES, FUNCTIONS, KINDS, TRAITS_KINDS, always, moved_by
from streams.engine.rules import RuleSet
from streams.engine.rules.model import Expr
from streams.engine.rules.nodes import Node
from streams.engine.timeplan import INF, TimePlan, plan_of
from streams.engine.view import View

log = logging.getLogger(__name__)

ALWAYS = "always"
#: what each feature or function depends on, as kinds of change (ALWAYS: time, the population
#: or other segments may change it without an event of the consumer)
FEATURE_KINDS: dict[str, frozenset[str]] = {
    name: frozenset({ALWAYS}) if always(name) else moved_by(name)
    for name in (*FEATURES, *FUNCTIONS)
}


def expression_kinds(expr: Expr) -> frozenset[str]:
    """Kinds of change that can alter the value of a compiled expression (ALWAYS among them:
    it may change with no event of the consumer)."""
    kinds: set[str] = set()
    for name in expr.reads:
        kinds |= TRAITS_KINDS if name == "traits" else FEATURE_KINDS[name]
    return frozenset(kinds)


#: every kind of change, one bit each: an event's changes are an int mask of these
KIND_BITS: dict[str, int] = {kind.name: 1 << i for i, kind in enumerate(KINDS)}
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
    #: time plans of the segments that time alone can change (empty: the rules are event-driven)
    timed: tuple[TimePlan, ...] = ()
    _by_mask: dict[int, tuple[Step, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, rules: RuleSet) -> SegmentPlan:
        steps = []
        for seg in rules.segments:
            kinds = expression_kinds(seg.when)
            mask = EVERYTHING if ALWAYS in kinds else mask_of(kinds)
            steps.append(Step(seg.name, seg.when.fn, mask))
        names = tuple(s.name for s in rules.segments)
        text = "\n".join(f"{s.name}\0{s.when.source}" for s in rules.segments)
        signature = zlib.crc32(text.encode()) or 1
        every = rules.settings.reevaluate_every
        timed = tuple(
            p for seg in rules.segments if (p := plan_of(seg.when.fn, every)) is not None
        )
        return cls(tuple(steps), names, frozenset(names), signature, timed)

    def next_recheck(self, view: View, horizon: float = -INF) -> float:
        """When the consumer of `view`, just evaluated, needs its next re-check (inf: never);
        `horizon`: the population stands still until then (see timeplan.Cadence)."""
        best = INF
        for p in self.timed:
            t = p.next(view, horizon)
            if t < best:
                best = t
        return best

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
