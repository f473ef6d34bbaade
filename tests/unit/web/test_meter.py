"""The worker's plain counters: what one output record adds, segment sizes, the recent ring."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from streams.engine.state import ConsumerState
from streams.engine.store import MemoryStore
from streams.web.meter import LATENCY_BUCKETS, Latency, Meter, count_members, pending_timers


def change(cid: str, seg: str, what: str, at: str = "2026-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {"consumer_id": cid, "segment": seg, "change": what, "at": at}


def meter(now: float = 1000.0) -> Meter:
    return Meter(lambda key: 0 if key < "m" else 1, recent=5, clock=lambda: now)


def test_triggers_count_by_campaign_offer_kind_and_holdout() -> None:
    m = meter()
    t = {"campaign": "cart", "offer": "free-shipping", "kind": "retargeting", "holdout": False}
    m.observe("triggers.retargeting", "a", t, -1.0)
    m.observe("triggers.retargeting", "b", t, -1.0)
    m.observe("triggers.retargeting", "c", {**t, "holdout": True}, -1.0)
    assert m.triggers == {
        ("cart", "free-shipping", "retargeting", "false"): 2,
        ("cart", "free-shipping", "retargeting", "true"): 1,
    }


def test_suppressions_and_dead_letters_count_by_reason() -> None:
    m = meter()
    m.observe("suppressed", "a", {"campaign": "cart", "reason": "consent"}, -1.0)
    m.observe("dead-letters", "clickstream", {"reason": "invalid_json"}, -1.0)
    m.observe("dead-letters", "clickstream", {"reason": "invalid_json"}, -1.0)
    assert m.suppressions == {("cart", "consent"): 1}
    assert m.dead_letters == {"invalid_json": 2}
    assert [k for k, _, _ in m.recent] == ["a"]  # (dead letters belong to no consumer)


def test_segment_sizes_start_from_the_stored_members_and_follow_the_changes() -> None:
    store = MemoryStore()
    for cid, segs in (("a1", ["vip"]), ("a2", ["vip", "new"]), ("a3", [])):
        state = ConsumerState(cid, 0.0)
        state.segments = segs
        store.put("c/" + cid, state.to_bytes())
    store.put("a/alias", b"a1")
    assert count_members(store) == {"vip": 2, "new": 1}
    m = meter()
    m.hold(0, store)
    m.members[1] = {"vip": 5}
    m.observe("segment-changes", "a3", change("a3", "vip", "entered"), -1.0)
    m.observe("segment-changes", "a2", change("a2", "new", "exited"), -1.0)
    m.observe("segment-changes", "x", change("x", "vip", "exited"), -1.0)  # partition 1
    assert m.segment_sizes() == {"vip": 7, "new": 0}
    assert m.segment_changes == {("vip", "entered"): 1, ("new", "exited"): 1, ("vip", "exited"): 1}
    m.release(1)
    assert m.segment_sizes() == {"vip": 3, "new": 0}


def test_a_change_on_a_partition_not_held_moves_no_size() -> None:
    m = meter()
    m.observe("segment-changes", "a", change("a", "vip", "entered"), -1.0)
    assert m.segment_sizes() == {}


def test_latency_is_observed_from_the_input_records_timestamp_only() -> None:
    m = meter(now=1000.0)
    rec = {"campaign": "c", "reason": "consent"}
    m.observe("suppressed", "a", rec, 999.96)  # 40 ms
    m.observe("suppressed", "a", rec, -1.0)  # a wall-clock timer: no input record
    m.observe("suppressed", "a", rec, 1000.5)  # a timestamp ahead of the clock counts as 0
    assert m.latency.count == 2
    cum = dict(m.latency.cumulative())
    assert cum["0.005"] == 1 and cum["0.025"] == 1 and cum["0.05"] == 2 and cum["+Inf"] == 2


def test_latency_buckets_are_cumulative_and_end_with_inf() -> None:
    h = Latency()
    for s in (0.001, 0.2, 7.0, 1e6):
        h.observe(s)
    cum = h.cumulative()
    assert [b for b, _ in cum] == [*map(str, LATENCY_BUCKETS), "+Inf"]
    assert [n for _, n in cum] == sorted(n for _, n in cum) and cum[-1][1] == 4
    assert h.sum == 0.001 + 0.2 + 7.0 + 1e6


def test_a_latency_exactly_on_a_bound_counts_in_that_bound_s_bucket() -> None:
    h = Latency()
    for s in (0.0, 0.005, 0.0050001, 300.0, 300.5):
        h.observe(s)
    assert h.counts[0] == 2 and h.counts[1] == 1  # le=0.005 holds 0 and 0.005 itself
    assert h.counts[len(LATENCY_BUCKETS) - 1] == 1 and h.counts[-1] == 1  # le=300, then +Inf


def test_every_latency_lands_in_the_bucket_bisect_gives() -> None:
    h = Latency()
    values = [b * f for b in LATENCY_BUCKETS for f in (0.5, 1.0, 1.5)] + [0.0, 1e9]
    for s in values:
        h.observe(s)
    expected = [0] * (len(LATENCY_BUCKETS) + 1)
    for s in values:
        expected[bisect_left(LATENCY_BUCKETS, s)] += 1
    assert h.counts == expected


def test_the_recent_ring_is_bounded_and_a_consumers_outputs_come_oldest_first() -> None:
    m = meter()  # keeps 5
    for i in range(8):
        m.observe("segment-changes", "a" if i % 2 else "b", change("a", f"s{i}", "entered"), -1)
    assert len(m.recent) == 5
    assert [r["record"]["segment"] for r in m.recent_of("a")] == ["s3", "s5", "s7"]
    assert [r["record"]["segment"] for r in m.recent_of("a", limit=2)] == ["s5", "s7"]
    assert m.recent_of("a")[0]["topic"] == "segment-changes"


def test_entry_times_come_from_the_latest_entry_still_in_the_ring() -> None:
    m = Meter(lambda _k: 0)
    m.observe("segment-changes", "a", change("a", "vip", "entered", "T1"), -1)
    m.observe("segment-changes", "a", change("a", "vip", "exited", "T2"), -1)
    m.observe("segment-changes", "a", change("a", "vip", "entered", "T3"), -1)
    m.observe("segment-changes", "a", change("a", "new", "entered", "T4"), -1)
    m.observe("segment-changes", "a", change("a", "new", "exited", "T5"), -1)
    assert m.entered_at("a") == {"vip": "T3"}


def test_pending_timers_count_the_index_entries_by_kind() -> None:
    from streams.engine.timers import RECHECK, TTL, entry_key

    store = MemoryStore()
    for due, cid, name in ((5.0, "a", "cart"), (6.0, "b", "cart"), (7.0, "a", RECHECK),
                           (8.0, "a", TTL)):
        store.put(entry_key(due, cid, name), b"")
    store.put("c/a", b"")
    assert pending_timers(store) == {"trigger": 2, "recheck": 1, "profile_ttl": 1}


def test_an_erasure_purges_the_consumer_from_the_recent_outputs() -> None:
    held = {"a", "b"}
    m = Meter(lambda _k: 0, exists=lambda cid: cid in held)
    m.observe("segment-changes", "a", change("a", "vip", "entered"), -1)
    m.observe("segment-changes", "b", change("b", "vip", "entered"), -1)
    gone = {"consumer_id": "a", "email": None, "consented": False, "at": "T"}
    m.observe("profiles", "a", gone, -1)  # a withdrawal of a consumer still held: kept
    assert len(m.recent_of("a")) == 2
    held.discard("a")  # erased: the engine emits the same empty profile
    m.observe("profiles", "a", gone, -1)
    assert m.recent_of("a") == [] and len(m.recent_of("b")) == 1


def test_the_ring_keeps_a_record_as_its_bytes_on_the_topic_and_reads_it_back() -> None:
    from streams.contract import encode_value

    m = meter()
    entered = change("a1", "vip", "entered", "2026-01-02T00:00:00.000Z")
    m.observe("segment-changes", "a1", entered, -1.0, encode_value("segment-changes", entered))
    assert isinstance(m.recent[-1][2], bytes)
    assert m.recent_of("a1") == [{"topic": "segment-changes", "record": entered}]
    assert m.entered_at("a1") == {"vip": "2026-01-02T00:00:00.000Z"}
