"""Stored consumer state is versioned: what an older release wrote still loads, a newer one's
is refused with a reason. The version-1 bytes in tests/data were written by release 8db3b87
(see tests/data/make_state_v1.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.engine.core import Engine
from streams.engine.rules import load_rules
from streams.engine.state import FIELDS, STATE_VERSION, ConsumerState, StateVersionError
from streams.engine.store import MemoryStore
from tests.data.make_state_v1 import RULES

DATA = Path(__file__).resolve().parents[2] / "data"
V1_LINES = (DATA / "state_v1.jsonl").read_bytes().splitlines()
V1_FIELDS: list[dict[str, Any]] = orjson.loads((DATA / "state_v1.expected.json").read_bytes())
ADDED_SINCE_V1 = {f.name: f for f in FIELDS if f.since > 1}


def as_json(state: ConsumerState) -> dict[str, Any]:
    """Every field as JSON values, as tests/data/make_state_v1.fields() wrote them."""
    out: dict[str, Any] = {}
    for name in (f.name for f in FIELDS):
        value = getattr(state, name)
        if name == "timers":
            value = {k: t.to_json() for k, t in value.items()}
        elif name == "price":
            value = sorted(value.items())
        out[name] = value
    return orjson.loads(orjson.dumps(out))


def test_fields_are_only_ever_appended_each_with_the_version_that_added_it() -> None:
    since = [f.since for f in FIELDS]
    assert since == sorted(since) and since[0] == 1 and since[-1] == STATE_VERSION
    assert since.count(1) == 32  # version 1: 31 fields always stored, and `plan`


def test_the_fixture_is_what_release_1_wrote() -> None:
    assert len(V1_LINES) == 3
    assert all(orjson.loads(line)[0] == 1 and len(orjson.loads(line)) == 33 for line in V1_LINES)


@pytest.mark.parametrize("i", range(3))
def test_a_version_1_state_loads_into_the_same_state(i: int) -> None:
    state = as_json(ConsumerState.from_bytes(V1_LINES[i]))
    assert {k: v for k, v in state.items() if k not in ADDED_SINCE_V1} == V1_FIELDS[i]
    assert state["recheck"] == 0.0  # added in version 2: its initial value


@pytest.mark.parametrize("i", range(3))
def test_a_version_1_state_is_written_back_in_the_current_version(i: int) -> None:
    data = ConsumerState.from_bytes(V1_LINES[i]).to_bytes()
    assert orjson.loads(data)[0] == STATE_VERSION == 6
    assert len(orjson.loads(data)) == len(FIELDS) + 1
    again = ConsumerState.from_bytes(data)
    assert as_json(again) == as_json(ConsumerState.from_bytes(V1_LINES[i]))
    assert again.to_bytes() == data


def test_an_engine_on_a_store_of_version_1_states_keeps_their_timers() -> None:
    store = MemoryStore()
    for line in V1_LINES:
        store.put("c/" + orjson.loads(line)[1], line)
    eng = Engine(load_rules(RULES), store)
    browse_due = ConsumerState.from_bytes(V1_LINES[2]).timers["browse-abandonment"].due
    out = eng.advance(browse_due)
    assert [(t["campaign"], t["consumer_id"]) for t in out.triggers] == [
        ("browse-abandonment", "u3")
    ]


def test_a_state_of_an_unknown_newer_version_is_refused_with_the_reason() -> None:
    newer = orjson.loads(V1_LINES[0])
    newer[0] = STATE_VERSION + 1
    reason = rf"version {STATE_VERSION + 1} is unknown .* newer release"
    with pytest.raises(StateVersionError, match=reason):
        ConsumerState.from_bytes(orjson.dumps(newer))


@pytest.mark.parametrize("data", [b"{}", b"[]", b'["1", "u"]', b"[0]", b"[1, \"u\", 0.0]"])
def test_bytes_that_are_no_consumer_state_are_refused_with_the_reason(data: bytes) -> None:
    with pytest.raises(StateVersionError):
        ConsumerState.from_bytes(data)


def test_state_written_before_the_plan_signature_still_reads() -> None:
    """Version 1 before `plan` existed has no such field: it reads as never evaluated."""
    older = orjson.dumps(orjson.loads(V1_LINES[0])[:32])
    assert ConsumerState.from_bytes(older).plan == 0


@pytest.mark.parametrize("i", range(3))
def test_a_state_written_before_the_user_flag_holds_a_user_id_when_ids_merged_into_it(
    i: int,
) -> None:
    state = ConsumerState.from_bytes(V1_LINES[i])
    assert state.user == bool(state.aliases)
