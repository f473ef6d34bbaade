"""What the engine emits: output records by kind, and messages to other keys (forwards)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from streams.engine import jsonbytes
from streams.engine.state import ConsumerState
from streams.engine.topics import (
    CONVERSIONS,
    DEAD_LETTERS,
    PROFILES,
    SEGMENT_CHANGES,
    SUPPRESSED,
    trigger_topic,
)

Record = dict[str, Any]


class Forward:
    """A message for the partition that owns `key`: one of the kinds below. They travel as
    objects within a process; `encode_forward`/`decode_forward` give the bytes form used only
    where a forward crosses Kafka to a partition another worker owns."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and _fields(self) == _fields(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}{_fields(self)!r}"


class EventForward(Forward):
    """An event for consumer `key`: an id merged into `key` (the engine's alias), or an input
    record read on a partition other than its key's (`where` = (source, offset), processed as
    an input there). `hops`: alias links followed so far (bounded: see core.MAX_HOPS)."""

    __slots__ = ("event", "hops", "where")

    def __init__(
        self, key: str, event: dict[str, Any], where: tuple[str, str | None] | None = None,
        hops: int = 0,
    ) -> None:
        self.key = key
        self.event = event
        self.where = where
        self.hops = hops


class MergeOut(Forward):
    """Merge consumer `key` into `into`: its partition gives up the state (then MergeIn)."""

    __slots__ = ("into",)

    def __init__(self, key: str, into: str) -> None:
        self.key = key
        self.into = into


class MergeIn(Forward):
    """The state of `source`, to merge into consumer `key`. `hops`: alias links followed so
    far when `key` itself had merged on (bounded: see core.MAX_HOPS)."""

    __slots__ = ("hops", "source", "state")

    def __init__(self, key: str, source: str, state: ConsumerState, hops: int = 0) -> None:
        self.key = key
        self.source = source
        self.state = state
        self.hops = hops


class Forget(Forward):
    """Erase consumer `key` (an alias of it was forgotten elsewhere)."""

    __slots__ = ()


class ForgetAlias(Forward):
    """Drop the alias `key` (the consumer it pointed to was forgotten)."""

    __slots__ = ()


def _fields(fwd: Forward) -> tuple[Any, ...]:
    if isinstance(fwd, EventForward):
        return (fwd.key, fwd.event, fwd.where, fwd.hops)
    if isinstance(fwd, MergeOut):
        return (fwd.key, fwd.into)
    if isinstance(fwd, MergeIn):
        return (fwd.key, fwd.source, fwd.state.to_bytes(), fwd.hops)
    return (fwd.key,)


def encode_forward(fwd: Forward) -> bytes:
    """The bytes form of a forward (the value of a `forwards` topic record, keyed `fwd.key`)."""
    msg: dict[str, Any]
    if isinstance(fwd, EventForward):
        msg = {"op": "event", "to": fwd.key, "event": fwd.event}
        if fwd.where is not None:
            msg["input"] = list(fwd.where)
        if fwd.hops:
            msg["hops"] = fwd.hops
    elif isinstance(fwd, MergeOut):
        msg = {"op": "merge_out", "from": fwd.key, "into": fwd.into}
    elif isinstance(fwd, MergeIn):
        msg = {"op": "merge_in", "from": fwd.source, "into": fwd.key,
               "state": fwd.state.to_bytes().decode()}
        if fwd.hops:
            msg["hops"] = fwd.hops
    elif isinstance(fwd, Forget):
        msg = {"op": "forget", "id": fwd.key}
    elif isinstance(fwd, ForgetAlias):
        msg = {"op": "forget_alias", "id": fwd.key}
    else:
        raise TypeError(f"not a forward: {fwd!r}")
    return jsonbytes.dumps(msg)


def decode_forward(data: bytes) -> Forward:
    """The forward `encode_forward` made; ValueError (with the reason) for anything else."""
    try:
        msg = orjson.loads(data)
        if not isinstance(msg, dict):
            raise ValueError("not a JSON object")
        op = msg.get("op")
        if op == "event":
            where = msg.get("input")
            return EventForward(
                _str(msg["to"]), _dict(msg["event"]),
                (str(where[0]), None if where[1] is None else str(where[1]))
                if where is not None else None,
                _int(msg.get("hops", 0)),
            )
        if op == "merge_out":
            return MergeOut(_str(msg["from"]), _str(msg["into"]))
        if op == "merge_in":
            state = ConsumerState.from_bytes(_str(msg["state"]).encode())
            return MergeIn(_str(msg["into"]), _str(msg["from"]), state, _int(msg.get("hops", 0)))
        if op == "forget":
            return Forget(_str(msg["id"]))
        if op == "forget_alias":
            return ForgetAlias(_str(msg["id"]))
        raise ValueError(f"unknown forward op {op!r}")
    except (KeyError, IndexError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"malformed forward: {exc!r}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a count, got {value!r}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


class Outputs:
    """Records produced by one engine call, in the order they happened."""

    __slots__ = (
        "conversions",
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
        self.conversions: list[Record] = []
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
        self.conversions.extend(other.conversions)
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
        for r in self.conversions:
            yield CONVERSIONS, r["consumer_id"], r

    def __bool__(self) -> bool:
        return bool(
            self.segment_changes
            or self.triggers
            or self.suppressed
            or self.dead_letters
            or self.profiles
            or self.conversions
            or self.forwards
        )
