from __future__ import annotations

from streams.engine.state import ConsumerState, Timer
from tests.unit.engine.helpers import T0


def test_state_round_trips_through_bytes():
    s = ConsumerState("u1", T0)
    s.cat_aff = {"road": 1.5}
    s.price = {12: 2.0}
    s.timers = {"nudge": Timer(T0 + 60, T0, "a1", ["p1"])}
    s.plan = 1234
    back = ConsumerState.from_bytes(s.to_bytes())
    assert back.to_bytes() == s.to_bytes()
    assert back.price == {12: 2.0} and back.timers["nudge"].due == T0 + 60

