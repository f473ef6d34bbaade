"""RFM scores: a tie rule that never skips a level, and scores against the whole population."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.population import Population, money_bucket, recency_bucket
from streams.engine.sketches import Histogram
from streams.engine.state import ConsumerState
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, T0, rules, track
from tests.unit.fit.cdnow import write_events

NO_RULES = rules("segments: []\nsettings:\n  max_clock_skew: 30d\n")


def scores(counts: dict[int, int]) -> dict[int, int]:
    """bucket -> score of a histogram of these counts."""
    h = Histogram(dict(counts))
    return {b: h.score(b) for b in counts}


# ------------------------------------------------------------------------------ the tie rule
@given(st.dictionaries(st.integers(-50, 50), st.integers(1, 1000), min_size=1, max_size=12))
def test_tied_data_holds_every_level_it_can_support_and_skips_none(counts):
    got = scores(counts)
    assert set(got.values()) == set(range(1, min(len(counts), 5) + 1))
    ordered = [got[b] for b in sorted(counts)]
    assert ordered == sorted(ordered)  # a higher bucket never scores lower


def test_a_bucket_holding_most_of_the_population_leaves_the_next_levels_to_the_next_buckets():
    # CDNOW's frequency: 59 % one order; nearest-rank cuts put 1 and 2 orders two levels apart
    counts = {1: 590, 2: 190, 3: 90, 4: 40, 5: 30, 6: 25, 7: 20, 8: 15}
    assert [scores(counts)[b] for b in range(1, 9)] == [1, 2, 3, 4, 5, 5, 5, 5]


def test_without_ties_the_cuts_are_the_nearest_rank_quintiles():
    h = Histogram({b: 1 for b in range(100)})
    assert h.cuts() == [19, 39, 59, 79]
    assert [h.score(b) for b in (0, 19, 20, 79, 80, 99)] == [1, 1, 2, 4, 5, 5]


def test_fewer_distinct_values_than_levels_give_one_level_each_from_the_bottom():
    assert scores({7: 100, 9: 1}) == {7: 1, 9: 2}
    assert scores({3: 5}) == {3: 1}


# ------------------------------------------------------------------------------ CDNOW
def _cdnow_states(tmp_path: Path, partitions: int) -> tuple[Runtime, list[ConsumerState]]:
    """The CDNOW purchases (in time order) through a runtime; every buyer's state."""
    path = tmp_path / "cdnow.jsonl"
    write_events(path)
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    events.sort(key=lambda e: (e["timestamp"], e["messageId"]))
    rt = Runtime(NO_RULES, partitions)
    for ev in events:
        rt.process(ev)
    rt.flush()
    states = [
        ConsumerState.from_bytes(v)
        for e in rt.engines.values()
        for k, v in e.store.items()
        if k.startswith("c/")
    ]
    return rt, states


def _whole_population_scores(states: list[ConsumerState]) -> list[tuple[int, int, int]]:
    """Each consumer's scores from histograms of all consumers, computed afresh."""
    r = Histogram(dict(Counter(recency_bucket(s.last_order or 0.0) for s in states)))
    f = Histogram(dict(Counter(s.orders for s in states)))
    m = Histogram(dict(Counter(money_bucket(s.revenue) for s in states)))
    return [
        (r.score(recency_bucket(s.last_order or 0.0)), f.score(s.orders),
         m.score(money_bucket(s.revenue)))
        for s in states
    ]


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory):
    return _cdnow_states(tmp_path_factory.mktemp("cdnow"), 4)


def test_on_cdnow_every_partition_scores_against_the_whole_population(cdnow):
    rt, states = cdnow
    assert len(states) == 2357
    exact = _whole_population_scores(states)
    got = [rt.engines[rt.partition_of(s.id)].population.rfm(s) for s in states]
    agree = sum(g == e for g, e in zip(got, exact, strict=True)) / len(states)
    # (the cut points are cached until about 1 % of the population changed)
    assert agree >= 0.99


def test_on_cdnow_no_frequency_level_is_empty(cdnow):
    rt, states = cdnow
    shares = Counter(rt.population.rfm(s)[1] for s in states)
    assert sorted(shares) == [1, 2, 3, 4, 5]
    one_order = sum(s.orders == 1 for s in states)
    assert one_order > 0.4 * len(states)  # tied, more than two quintiles' worth
    assert shares[1] == one_order and shares[2] == sum(s.orders == 2 for s in states)
    print("f shares", {k: round(v / len(states), 3) for k, v in sorted(shares.items())})


def test_a_partition_alone_scores_against_its_own_buyers_only(cdnow):
    rt, states = cdnow
    lone = Population()
    engine = rt.engines[0]
    own = [s for s in states if rt.partition_of(s.id) == 0]
    for s in own:
        lone.add(s)
    assert lone.frequency.total == len(own) == engine.population.frequency.total
    assert rt.population.frequency.total == len(states)


# ------------------------------------------------------------------------------ the scope
def _orders(n: int) -> list[dict]:
    return [
        track(f"u{i}", "Order Completed", T0 + i * 600, order_id=f"o{i}-{k}",
              revenue=10.0 * (i + 1))
        for i in range(n)
        for k in range(i % 4 + 1)
    ]


def test_scores_move_with_orders_on_other_partitions():
    rt = Runtime(NO_RULES, 4)
    rt.process(track("alice", "Order Completed", T0, order_id="a", revenue=50.0))
    alice = rt.engines[rt.partition_of("alice")]
    state = alice._get("alice")
    assert state is not None
    assert alice.population.rfm(state) == (1, 1, 1)  # alone: the lowest level of each
    for ev in _orders(40):
        rt.process(ev)
    assert rt.population.frequency.total == 41
    assert {rt.partition_of(f"u{i}") for i in range(40)} == {0, 1, 2, 3}
    assert alice.population.rfm(state) == rt.population.rfm(state)


def test_a_dropped_partition_takes_its_buyers_out_of_the_scope():
    rt = Runtime(NO_RULES, 4)
    for ev in _orders(40):
        rt.process(ev)
    engine = rt.drop(1)
    assert engine is not None
    assert rt.population.frequency.total == 40 - engine.population.frequency.total
    assert engine.population.scope is engine.population
    rt.add(1, engine)
    assert rt.population.frequency.total == 40


def test_a_restart_scores_as_before():
    segs = rules(
        "segments:\n  - name: best\n    when: rfm.f >= 4 and rfm.m >= 3\n"
        "settings:\n  max_clock_skew: 30d\n"
    )
    events = _orders(250)  # (more buyers than 100: cut points are cached across events)

    def run(restart_every: int) -> list[bytes]:
        rt = Runtime(segs, 3)
        lines: list[bytes] = []
        for i, ev in enumerate(events):
            lines += [orjson.dumps(r) for _, _, r in rt.process(ev).records()]
            if restart_every and i % restart_every == 0:
                rt.flush()
                stores = [e.store for e in rt.engines.values()]
                rt = Runtime(segs, 3, store_factory=stores.__getitem__)
        return lines

    straight = run(0)
    assert any(b"best" in line for line in straight)
    for every in (1, 7, 50):
        assert run(every) == straight


def test_an_engine_alone_scores_against_its_own_partition():
    p = Population()
    s = ConsumerState("u", T0)
    s.orders, s.revenue, s.last_order = 2, 20.0, T0 + DAY
    p.add(s)
    assert p.scope is p and p.rfm(s) == (1, 1, 1)


def test_a_partition_joining_later_counts_as_a_change_of_the_population():
    rt = Runtime(NO_RULES, 2)
    for ev in _orders(300):
        rt.process(ev)
    rt.flush()
    moved = rt.drop(1)
    assert moved is not None
    rt.population.frequency.cuts()  # (cut points of partition 0 alone, now fresh)
    assert rt.population.frequency._stale == 0
    rt.add(1, moved)
    assert rt.population.frequency._stale >= moved.population.frequency.total
