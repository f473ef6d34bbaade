"""What the engine emits: output records by kind, and messages to other keys (forwards)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.engine.topics import (
    DEAD_LETTERS,
    PROFILES,
    SEGMENT_CHANGES,
    SUPPRESSED,
    trigger_topic,
)

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Forward:
    """A message for the partition that owns `key` (merge, forwarded event, erasure)."""

    key: str
    payload: bytes


class Outputs:
    """Records produced by one engine call, in the order they happened."""

    __slots__ = (
        "dead_letters",
        "forwards",
        "profiles",
        "segment_changes",
        "suppressed",
        "triggers",
    )

    def __init__(self) -> None:  # one per event: plain list literals, no field factories
        self.segment_changes: list[Record] = []
        self.triggers: list[Record] = []
        self.suppressed: list[Record] = []
        self.dead_letters: list[Record] = []
        self.profiles: list[Record] = []
        self.forwards: list[Forward] = []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outputs):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def extend(self, other: Outputs) -> None:
        self.segment_changes.extend(other.segment_changes)
        self.triggers.extend(other.triggers)
        self.suppressed.extend(other.suppressed)
        self.dead_letters.extend(other.dead_letters)
        self.profiles.extend(other.profiles)
        self.forwards.extend(other.forwards)

    def records(self) -> Iterator[tuple[str, str, Record]]:
        """(topic, key, value) for every output record; forwards excluded."""
        for r in self.segment_changes:
            yield SEGMENT_CHANGES, r["consumer_id"], r
        for r in self.triggers:
            yield trigger_topic(r["kind"]), r["consumer_id"], r
        for r in self.suppressed:
            yield SUPPRESSED, r["consumer_id"], r
        for r in self.dead_letters:
            yield DEAD_LETTERS, r.get("source") or "", r
        for r in self.profiles:
            yield PROFILES, r["consumer_id"], r

    def __bool__(self) -> bool:
        return bool(
            self.segment_changes
            or self.triggers
            or self.suppressed
            or self.dead_letters
            or self.profiles
            or self.forwards
        )
