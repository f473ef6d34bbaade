"""The partition runtime: forwards between partitions as objects, the stream clock over every
partition, and records found on the wrong partition. Real engines on MemoryStore."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.engine.outputs import (
    EventForward,
    Forget,
    ForgetAlias,
    Forward,
    MergeIn,
    MergeOut,
    Outputs,
    decode_forward,
    encode_forward,
)
from streams.engine.partitioning import partition_for
from streams.engine.state import ConsumerState
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, HOUR, MIN, T0, anon_track, identify, rules, track

RULES = rules(
    """
segments:
  - name: browser
    when: views >= 2
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    unless: [Order Completed]
    offer: free-shipping
"""
)
N = 4


def on_partition(p: int, prefix: str = "u", n: int = N) -> list[str]:
    """Ids whose key lands on partition `p` (the first few)."""
    return [u for i in range(500) if partition_for(u := f"{prefix}{i}", n) == p][:5]


def lines(out: Outputs) -> list[str]:
    return [orjson.dumps([t, k, r]).decode() for t, k, r in out.records()]


# ------------------------------------------------------------------------------------ forwards
@pytest.mark.parametrize(
    "fwd",
    [
        EventForward("u1", {"type": "track", "userId": "a"}),
        EventForward("u1", {"type": "page"}, ("clickstream", "clickstream:3:9")),
        EventForward("u1", {"type": "track", "userId": "a"}, None, 3),
        MergeOut("anon", "user"),
        MergeIn("user", "anon", ConsumerState("anon", T0)),
        MergeIn("user", "anon", ConsumerState("anon", T0), 2),
        Forget("u1"),
        ForgetAlias("u2"),
    ],
)
def test_a_forward_survives_its_bytes_form(fwd: Forward) -> None:
    assert decode_forward(encode_forward(fwd)) == fwd


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"{not json", "malformed forward"),
        (b"[1]", "not a JSON object"),
        (b'{"op": "teleport", "id": "x"}', "unknown forward op 'teleport'"),
        (b'{"op": "merge_out", "from": "a"}', "malformed forward"),
        (b'{"op": "forget", "id": 5}', "malformed forward"),
        (b'{"op": "event", "to": "u", "event": {}, "hops": -1}', "malformed forward"),
    ],
)
def test_a_forward_that_cannot_be_read_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_forward(data)


def test_a_merge_across_partitions_travels_as_objects_and_settles_before_the_next_event() -> None:
    anon = on_partition(0, "anon-")[0]
    uid = on_partition(1, "user-")[0]
    rt = Runtime(RULES, N)
    rt.process(anon_track(anon, "Product Added", T0, product_id="p1"))
    out = rt.process(identify(uid, T0 + MIN, anon=anon))
    assert out.forwards == []  # every partition is held here: nothing left to send
    user = rt.engines[1].consumer(uid)
    assert user is not None and "cart" in user.timers and anon in user.aliases
    assert rt.engines[0].consumer(anon) is None


def test_forwards_to_partitions_held_elsewhere_are_left_for_the_shell_as_objects() -> None:
    anon = on_partition(0, "anon-")[0]
    uid = on_partition(1, "user-")[0]
    here = Runtime(RULES, N, held=[1])  # the user's partition
    there = Runtime(RULES, N, held=[0])  # the anonymous id's
    there.process(anon_track(anon, "Product Added", T0, product_id="p1"))
    out = here.process(identify(uid, T0 + MIN, anon=anon))
    [merge_out] = out.forwards
    assert merge_out == MergeOut(anon, uid)
    back = there.receive(decode_forward(encode_forward(merge_out)))
    [merge_in] = back.forwards
    assert isinstance(merge_in, MergeIn) and merge_in.key == uid
    assert here.receive(decode_forward(encode_forward(merge_in))).forwards == []
    user = here.engines[1].consumer(uid)
    assert user is not None and "cart" in user.timers


def test_split_runtimes_that_exchange_forwards_as_bytes_give_one_runtimes_outputs() -> None:
    events: list[dict[str, Any]] = []
    for i in range(40):
        anon, uid = f"anon-{i}", f"user-{i}"
        t = T0 + i * MIN
        events.append(anon_track(anon, "Product Viewed", t, product_id="p"))
        events.append(anon_track(anon, "Product Added", t + 1, product_id="p"))
        events.append(identify(uid, t + 2, anon=anon, email=f"{uid}@x.org"))
        events.append(track(uid, "Product Viewed", t + 3, product_id="q"))
    end = T0 + 5 * HOUR
    one = Runtime(RULES, N)
    expected = [line for ev in events for line in lines(one.process(ev))]
    expected += lines(one.advance(end))

    halves = [Runtime(RULES, N, held=[0, 1]), Runtime(RULES, N, held=[2, 3])]
    got: list[str] = []

    def owner(key: str) -> Runtime:
        return halves[0] if partition_for(key, N) < 2 else halves[1]

    def pump(out: Outputs) -> None:
        got.extend(lines(out))
        for fwd in out.forwards:
            pump(owner(fwd.key).receive(decode_forward(encode_forward(fwd))))

    for ev in events:
        key = ev.get("userId") or ev["anonymousId"]
        pump(owner(key).process(ev))
    for rt in halves:
        pump(rt.advance(end))
    assert sorted(got) == sorted(expected)


def _split_like_one(events: list[dict[str, Any]], owners: tuple[list[int], list[int]]) -> None:
    """Split runtimes exchanging forwards as bytes, each event settled before the next (as the
    workers' forwards are, in order), give the outputs of one runtime holding every partition,
    and terminate. (A dead letter's `at` is its partition's clock, which each worker keeps.)"""

    def comparable(out: Outputs) -> list[str]:
        for d in out.dead_letters:
            d.pop("at")
        return lines(out)

    one = Runtime(RULES, N)
    expected = [line for ev in events for line in comparable(one.process(ev))]
    halves = [Runtime(RULES, N, held=owners[0]), Runtime(RULES, N, held=owners[1])]
    got: list[str] = []

    def owner(key: str) -> Runtime:
        return halves[0] if partition_for(key, N) in owners[0] else halves[1]

    def pump(out: Outputs) -> None:
        got.extend(comparable(out))
        for fwd in out.forwards:
            pump(owner(fwd.key).receive(decode_forward(encode_forward(fwd))))

    for ev in events:
        pump(owner(ev.get("userId") or ev["anonymousId"]).process(ev))
    assert got == expected


def test_identify_back_and_forth_across_split_runtimes_is_refused_as_in_one_runtime() -> None:
    a, b = on_partition(0, "a-")[0], on_partition(2, "b-")[0]
    events = [
        anon_track(a, "Product Viewed", T0),
        identify(b, T0 + 1, anon=a),
        identify(a, T0 + 2, anon=b),
        anon_track(a, "Product Viewed", T0 + 3),
    ]
    _split_like_one(events, ([0, 1], [2, 3]))
    one = Runtime(RULES, N)
    reasons = [d["reason"] for ev in events for d in one.process(ev).dead_letters]
    assert reasons == ["identity_conflict"]


def test_a_three_id_cycle_across_three_partitions_terminates_as_in_one_runtime() -> None:
    a, b, c = on_partition(0, "a-")[0], on_partition(1, "b-")[0], on_partition(2, "c-")[0]
    events = [
        anon_track(a, "Product Viewed", T0),
        identify(b, T0 + 1, anon=a),
        identify(c, T0 + 2, anon=b),
        identify(a, T0 + 3, anon=c),
        track(a, "Product Viewed", T0 + 4),
    ]
    _split_like_one(events, ([0], [1, 2, 3]))
    _split_like_one(events, ([0, 2], [1, 3]))


def test_crossed_identifies_racing_on_two_workers_merge_neither_user_and_terminate() -> None:
    a, b = on_partition(0, "a-")[0], on_partition(2, "b-")[0]
    left, right = Runtime(RULES, N, held=[0, 1]), Runtime(RULES, N, held=[2, 3])
    # each worker applies its identify before the other's forwards arrive
    out_b = right.process(identify(b, T0, anon=a))
    out_a = left.process(identify(a, T0 + 1, anon=b))
    pending = [*out_b.forwards, *out_a.forwards]
    hops = 0
    while pending:
        fwd = pending.pop(0)
        rt = left if partition_for(fwd.key, N) < 2 else right
        pending.extend(rt.receive(decode_forward(encode_forward(fwd))).forwards)
        hops += 1
        assert hops < 50
    assert left.engines[0].consumer(a) is not None and right.engines[2].consumer(b) is not None
    assert left.stats()["merges_refused"] + right.stats()["merges_refused"] == 2


def test_a_cycle_of_aliases_left_by_an_older_release_is_cut_across_split_runtimes() -> None:
    a, b = on_partition(0, "a-")[0], on_partition(2, "b-")[0]
    left, right = Runtime(RULES, N, held=[0, 1]), Runtime(RULES, N, held=[2, 3])
    left.engines[0].store.put("a/" + a, b.encode())
    right.engines[2].store.put("a/" + b, a.encode())
    pending = list(left.process(track(a, "Product Viewed", T0)).forwards)
    dead: list[str] = []
    while pending:
        fwd = pending.pop(0)
        rt = left if partition_for(fwd.key, N) < 2 else right
        out = rt.receive(decode_forward(encode_forward(fwd)))
        dead += [d["reason"] for d in out.dead_letters]
        pending.extend(out.forwards)
    assert dead == ["identity_conflict"]
    assert left.stats()["identity_cycles_cut"] + right.stats()["identity_cycles_cut"] == 1


# ------------------------------------------------------------------------------------ clock
def test_a_sparse_partitions_timer_fires_when_other_partitions_events_pass_its_due() -> None:
    solo = on_partition(3)[0]
    busy = on_partition(0)
    rt = Runtime(RULES, N)
    rt.process(track(solo, "Product Added", T0, product_id="p1"))
    for i, t in enumerate((T0 + 10 * MIN, T0 + 29 * MIN)):
        assert rt.process(track(busy[i], "Page", t)).triggers == []
    out = rt.process(track(busy[2], "Product Viewed", T0 + 31 * MIN, product_id="p2"))
    [trigger] = out.triggers
    assert trigger["consumer_id"] == solo
    assert all(e.watermark == T0 + 31 * MIN for e in rt.engines.values())


def test_due_timers_fire_partitions_in_ascending_order_before_the_event() -> None:
    users = {p: on_partition(p)[0] for p in (3, 1, 2)}
    rt = Runtime(RULES, N)
    for p, uid in users.items():
        rt.process(track(uid, "Product Added", T0 + p, product_id="x"))
    out = rt.process(track(on_partition(0)[0], "Product Viewed", T0 + HOUR, product_id="y"))
    assert [t["consumer_id"] for t in out.triggers] == [users[1], users[2], users[3]]


def test_the_clock_stays_behind_by_the_allowed_lateness() -> None:
    late = rules(
        """
settings:
  allowed_lateness: 10m
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 30m
    offer: free-shipping
"""
    )
    solo = on_partition(3)[0]
    rt = Runtime(late, N)
    rt.process(track(solo, "Product Added", T0, product_id="p1"))
    other = on_partition(0)
    assert rt.process(track(other[0], "Page", T0 + 35 * MIN)).triggers == []
    assert len(rt.process(track(other[1], "Page", T0 + 41 * MIN)).triggers) == 1


def test_nothing_due_moves_only_the_clock_and_the_applied_partitions_watermark() -> None:
    rt = Runtime(RULES, N)
    uid = on_partition(2)[0]
    rt.process(track(uid, "Page", T0 + HOUR))
    assert rt.clock == T0 + HOUR
    assert rt.engines[2].watermark == T0 + HOUR
    assert [rt.engines[p].watermark for p in (0, 1, 3)] == [0.0, 0.0, 0.0]
    # an engine called later starts from the clock (its dead letters' `at`)
    [dead] = rt.process({"type": "track", "userId": on_partition(1)[0]}).dead_letters
    assert dead["at"] == "2026-01-01T01:00:00.000Z"


def test_a_backlog_bound_holds_the_clock_back() -> None:
    solo = on_partition(3)[0]
    rt = Runtime(RULES, N)
    rt.process(track(solo, "Product Added", T0, product_id="p1"))
    rt.bound = T0 + 20 * MIN  # an input partition still has records from t+20m on
    assert rt.process(track(on_partition(0)[0], "Page", T0 + HOUR)).triggers == []
    assert rt.clock == T0 + 20 * MIN
    rt.bound = float("inf")
    assert len(rt.process(track(on_partition(0)[1], "Page", T0 + HOUR)).triggers) == 1


def reasons(out: Outputs) -> list[str]:
    return [d["reason"] for d in out.dead_letters]


def test_a_lone_time_beyond_max_clock_skew_is_refused_and_never_moves_the_clock() -> None:
    rt = Runtime(RULES, N)
    a, b = on_partition(0)[:2]
    rt.process(track(a, "Page", T0))
    assert reasons(rt.process(track(b, "Page", T0 + 30 * DAY))) == ["time_out_of_range"]
    assert rt.clock == T0
    # the same consumer again (one device with a wrong clock) confirms nothing
    assert reasons(rt.process(track(b, "Page", T0 + 30 * DAY + MIN))) == ["time_out_of_range"]
    assert reasons(rt.process(track(a, "Page", T0 + HOUR))) == []
    assert rt.clock == T0 + HOUR


def test_another_consumers_far_ahead_time_confirms_nothing_either() -> None:
    rt = Runtime(RULES, N)
    a, b, c = on_partition(1)[:3]
    rt.process(track(a, "Page", T0))
    assert reasons(rt.process(track(b, "Page", T0 + 3 * DAY))) == ["time_out_of_range"]
    assert reasons(rt.process(track(c, "Page", T0 + 3 * DAY + HOUR))) == ["time_out_of_range"]
    assert rt.clock == T0


def test_the_wall_clock_confirms_a_far_ahead_time_within_max_clock_skew_of_it() -> None:
    rt = Runtime(RULES, N)
    a, b = on_partition(2)[:2]
    rt.process(track(a, "Page", T0))
    rt.tick(T0 + 5 * DAY)  # a live worker's tick: the wall clock is 5 days on
    assert reasons(rt.process(track(b, "Page", T0 + 5 * DAY + HOUR))) == []
    assert rt.clock == T0 + 5 * DAY + HOUR


# ------------------------------------------------------------------------------------ partitions
def test_a_record_found_on_another_partition_is_applied_on_its_keys() -> None:
    uid = on_partition(2)[0]
    rt = Runtime(RULES, N)
    rt.process(track(uid, "Product Added", T0, product_id="p"), "clickstream", "x", found=0)
    assert rt.engines[2].consumer(uid) is not None
    assert rt.engines[0].consumer(uid) is None
    assert rt.rerouted == 1 and rt.stats()["rerouted"] == 1


def test_a_record_whose_key_partition_is_held_elsewhere_leaves_as_an_event_forward() -> None:
    uid = on_partition(2)[0]
    ev = track(uid, "Product Added", T0, product_id="p")
    rt = Runtime(RULES, N, held=[0])
    out = rt.process(ev, "clickstream", "clickstream:0:4", found=0)
    assert out.forwards == [EventForward(uid, ev, ("clickstream", "clickstream:0:4"))]
    owner = Runtime(RULES, N, held=[2])
    owner.receive(decode_forward(encode_forward(out.forwards[0])))
    state = owner.engines[2].consumer(uid)
    assert state is not None and "cart" in state.timers
    assert owner.stats()["events"] == 1  # processed as an input there


def test_a_close_before_the_stream_clock_closes_at_the_clock() -> None:
    timed = rules(
        """
segments:
  - name: quiet
    when: days_since_last_seen >= 2d
"""
    )
    rt = Runtime(timed, N)
    a, b = on_partition(0)[:2]
    rt.process(track(a, "Page", T0))
    rt.process(track(b, "Page", T0 + DAY))
    out = rt.close(T0)  # before the last event: time never goes back
    assert rt.clock == T0 + DAY
    assert out.segment_changes == []
    [entered] = rt.close(T0 + 2 * DAY).segment_changes
    assert entered["consumer_id"] == a and entered["at"] == "2026-01-03T00:00:00.000Z"


# ------------------------------------------------------------------------------------ profiles
def test_a_profile_reads_the_features_at_the_stream_clock() -> None:
    uid = on_partition(2, "user-")[0]
    rt = Runtime(RULES, N)
    rt.process(track(uid, "Product Viewed", T0, product_id="p", price=10.0))
    other = on_partition(3, "user-")[0]  # (another partition)
    rt.process(track(other, "Product Viewed", T0 + 18 * HOUR, product_id="p", price=10.0))
    profile = rt.profile(uid)
    assert profile is not None
    assert profile["features"]["days_since_last_seen"] == 0.75  # the clock, not its partition's
    assert profile["at"] == "2026-01-01T18:00:00.000Z"


def test_a_profile_look_up_changes_nothing_and_unknown_ids_have_none() -> None:
    uid = on_partition(1, "user-")[0]
    rt = Runtime(RULES, N)
    rt.process(track(uid, "Product Viewed", T0, product_id="p", price=10.0))
    rt.flush()
    engine = rt.engines[1]
    engine._cache.clear()
    assert rt.profile(uid) is not None
    assert uid not in engine._cache  # (read from the store, not cached)
    assert rt.profile("nobody") is None
    assert "nobody" not in rt.engines[rt.partition_of("nobody")]._cache


def test_a_profile_sees_what_is_applied_and_not_yet_flushed() -> None:
    uid = on_partition(0, "user-")[0]
    rt = Runtime(RULES, N)
    rt.process(track(uid, "Product Viewed", T0, product_id="p", price=10.0))
    rt.process(track(uid, "Product Viewed", T0 + 1, product_id="p", price=10.0))
    profile = rt.profile(uid)
    assert profile is not None and profile["features"]["views"] == 2
    assert profile["segments"] == ["browser"]


def test_profiles_give_every_consumer_held_once() -> None:
    rt = Runtime(RULES, N)
    ids = [f"user-{i}" for i in range(12)]
    for i, uid in enumerate(ids):
        rt.process(track(uid, "Product Viewed", T0 + i, product_id="p", price=10.0))
    got = [p["consumer_id"] for p in rt.profiles()]
    assert sorted(got) == sorted(ids)


def test_profiles_come_by_partition_then_id_whatever_the_order_of_arrival() -> None:
    ids = [f"user-{i}" for i in range(12)]
    orders = []
    for seq in (ids, ids[::-1]):
        rt = Runtime(RULES, N)
        for i, uid in enumerate(seq):
            rt.process(track(uid, "Product Viewed", T0 + i, product_id="p", price=10.0))
        orders.append([p["consumer_id"] for p in rt.profiles()])
    assert orders[0] == orders[1]
    assert orders[0] == sorted(ids, key=lambda u: (partition_for(u, N), u))


def test_a_partition_taken_over_behind_the_clock_fires_its_timers_at_its_own_events_times(
) -> None:
    u, other = on_partition(2)[0], on_partition(0)[0]
    first = track(u, "Product Added", T0, product_id="p1")  # its timer is due at T0+30m
    elsewhere = [track(other, "Page", T0 + 10 * MIN), track(other, "Page", T0 + 2 * HOUR)]
    backlog = track(u, "Product Added", T0 + 40 * MIN, product_id="p2")  # after that due
    # one process holding every partition throughout, as replay: the events in time order
    ref = Runtime(RULES, N)
    expected = [ref.process(e) for e in (first, elsewhere[0], backlog, elsewhere[1])]
    expected.append(ref.advance(T0 + 3 * HOUR))
    # live: partition 2 was held by another worker, which applied `first` and stopped; this
    # worker's clock moved on to T0+2h; then it takes partition 2 over with its backlog
    previous = Runtime(RULES, N, held=[2])
    previous.process(first)
    live = Runtime(RULES, N, held=[0, 1, 3])
    got = [live.process(e) for e in elsewhere]
    engine = previous.drop(2)
    assert engine is not None
    live.add(2, engine)
    got += [live.process(backlog), live.advance(T0 + 3 * HOUR)]

    def triggers(outs: list[Outputs]) -> list[str]:
        return [line for out in outs for line in lines(out) if "triggers" in line[:20]]

    fired = [orjson.loads(line)[2]["fired_at"] for line in triggers(expected)]
    assert fired == ["2026-01-01T00:30:00.000Z", "2026-01-01T01:10:00.000Z"]
    assert triggers(got) == triggers(expected)
