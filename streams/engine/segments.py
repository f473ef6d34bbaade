"""Segment membership: evaluate every segment of the rules in file order, report the changes."""

from __future__ import annotations

import logging

from streams.engine.rules import RuleSet
from streams.engine.view import View

log = logging.getLogger(__name__)


def evaluate(rules: RuleSet, view: View) -> tuple[list[str], list[str]]:
    """Re-evaluate all segments for `view`; return (entered, exited), both in file order.

    `view.members` must hold the current memberships; it is updated in place as segments are
    evaluated, which is what `in_segment()` reads. Segments no longer in the rules are exited.
    """
    members = view.members
    known = rules_names(rules)
    stale = members - set(known)
    members -= stale
    before = set(members)
    for seg in rules.segments:
        try:
            inside = bool(seg.when.fn(view))
        except Exception:  # compiled rules are total; a bug here must not stop the stream
            log.exception("segment %s failed to evaluate", seg.name)
            inside = False
        if inside:
            members.add(seg.name)
        else:
            members.discard(seg.name)
    if members == before and not stale:
        return [], []
    entered = [n for n in known if n in members and n not in before]
    exited = [n for n in known if n in before and n not in members]
    return entered, exited + sorted(stale)


def rules_names(rules: RuleSet) -> list[str]:
    return [s.name for s in rules.segments]


def ordered(rules: RuleSet, members: set[str]) -> list[str]:
    """Memberships in file order (what we store and put on triggers)."""
    return [s.name for s in rules.segments if s.name in members]
