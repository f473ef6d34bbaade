"""Small builders for engine tests: rules from YAML text, events from keyword arguments."""

from __future__ import annotations

import itertools
from typing import Any

from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.outputs import Outputs
from streams.engine.rules import RuleSet, loads_rules
from streams.engine.store import MemoryStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0

_ids = itertools.count(1)


def rules(text: str) -> RuleSet:
    return loads_rules(text, "test.yaml")


def engine(text: str, store: MemoryStore | None = None, partition: int = 0) -> Engine:
    return Engine(rules(text), store if store is not None else MemoryStore(), partition)


def track(uid: str, name: str, t: float, mid: str | None = None, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": uid,
        "timestamp": iso(t),
        "messageId": mid or f"msg-{next(_ids)}",
        "properties": props,
    }


def identify(
    uid: str | None, t: float, anon: str | None = None, mid: str | None = None, **traits: Any
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "identify",
        "timestamp": iso(t),
        "messageId": mid or f"msg-{next(_ids)}",
        "traits": traits,
    }
    if uid:
        ev["userId"] = uid
    if anon:
        ev["anonymousId"] = anon
    return ev


def anon_track(anon: str, name: str, t: float, **props: Any) -> dict[str, Any]:
    ev = track("x", name, t, **props)
    del ev["userId"]
    ev["anonymousId"] = anon
    return ev


def run(eng: Engine, *events: dict[str, Any]) -> Outputs:
    out = Outputs()
    for ev in events:
        out.extend(eng.process(ev))
    return out
