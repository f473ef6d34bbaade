"""Identity stitching: an identify/alias with both ids merges the anonymous profile into the
user's, across partitions, with history and pending timers; erasure removes every trace."""

from __future__ import annotations

from streams.engine.partitioning import partition_for
from streams.runtime import Runtime as Router
from tests.unit.engine.helpers import HOUR, MIN, T0, anon_track, identify, rules, track

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


def _ids_on_different_partitions(n: int = 4) -> tuple[str, str]:
    anon = "anon-1"
    for i in range(100):
        uid = f"user-{i}"
        if partition_for(uid, n) != partition_for(anon, n):
            return anon, uid
    raise AssertionError("no pair found")


def collect(router: Router, *events):
    outs = [router.process(e) for e in events]
    return outs


def test_merge_moves_counters_and_timers_across_partitions():
    anon, uid = _ids_on_different_partitions()
    router = Router(RULES, 4)
    outs = collect(
        router,
        anon_track(anon, "Product Viewed", T0, category="road"),
        anon_track(anon, "Product Viewed", T0 + 1, category="road"),
        anon_track(anon, "Product Added", T0 + 2, product_id="bike-1"),
        identify(uid, T0 + MIN, anon=anon, email="a@example.com"),
    )
    merge_out = outs[-1]
    # the anonymous id leaves its segment, the user enters it
    assert [(c["consumer_id"], c["change"]) for c in merge_out.segment_changes] == [
        (anon, "exited"), (uid, "entered")]
    assert merge_out.profiles[0]["email"] == "a@example.com"
    user = router.engines[partition_for(uid, 4)].consumer(uid)
    assert user is not None and user.views == 2 and "cart" in user.timers
    assert router.engines[partition_for(anon, 4)].consumer(anon) is None
    # the timer moved with the profile: it fires for the user
    out = router.process(track("someone-else", "Page", T0 + HOUR))
    out.extend(router.advance(T0 + HOUR))
    assert [(t["consumer_id"], t["products"]) for t in out.triggers] == [(uid, ["bike-1"])]


def test_later_events_with_the_anonymous_id_reach_the_merged_consumer():
    anon, uid = _ids_on_different_partitions()
    router = Router(RULES, 4)
    collect(router, anon_track(anon, "Product Viewed", T0), identify(uid, T0 + 1, anon=anon))
    router.process(anon_track(anon, "Product Viewed", T0 + 2))
    router.process(anon_track(anon, "Order Completed", T0 + 3, order_id="o", revenue=5))
    user = router.engines[partition_for(uid, 4)].consumer(uid)
    assert user is not None and user.views == 2 and user.orders == 1
    assert router.stats()["forwarded"] == 2


def test_merge_is_idempotent():
    anon, uid = _ids_on_different_partitions()
    router = Router(RULES, 4)
    ev = identify(uid, T0 + 1, anon=anon)
    collect(router, anon_track(anon, "Product Viewed", T0), ev)
    again = dict(ev, messageId="other")
    router.process(again)
    user = router.engines[partition_for(uid, 4)].consumer(uid)
    assert user is not None and user.views == 1


def test_forget_removes_state_aliases_and_population_contribution():
    anon, uid = _ids_on_different_partitions()
    router = Router(RULES, 4)
    collect(
        router,
        anon_track(anon, "Product Viewed", T0),
        identify(uid, T0 + 1, anon=anon, email="x@example.com"),
        track(uid, "Product Viewed", T0 + 2),
        track(uid, "Order Completed", T0 + 3, order_id="o", revenue=50),
        track(uid, "Product Added", T0 + 4),
    )
    user_engine = router.engines[partition_for(uid, 4)]
    assert user_engine.population.frequency.total == 1
    out = router.forget(uid)
    assert [(c["consumer_id"], c["change"]) for c in out.segment_changes] == [(uid, "exited")]
    assert out.profiles == [
        {"consumer_id": uid, "email": None, "consented": False, "at": out.profiles[0]["at"]}]
    router.flush()
    for eng in router.engines.values():
        keys = [k for k, _ in eng.store.items()]
        assert not any(uid in k or anon in k for k in keys), keys
    assert user_engine.population.frequency.total == 0
    # the pending cart timer is gone too
    out = router.advance(T0 + 10 * HOUR)
    assert out.triggers == []
    # an event with the old anonymous id now starts a fresh, unrelated profile
    router.process(anon_track(anon, "Product Viewed", T0 + 11 * HOUR))
    fresh = router.engines[partition_for(anon, 4)].consumer(anon)
    assert fresh is not None and fresh.views == 1 and fresh.email is None


def test_forget_by_alias_follows_the_link():
    anon, uid = _ids_on_different_partitions()
    router = Router(RULES, 4)
    collect(router, anon_track(anon, "Product Viewed", T0), identify(uid, T0 + 1, anon=anon))
    router.forget(anon)
    router.flush()
    assert router.consumers() == 0


# ------------------------------------------------------------------ merges cannot loop
def _dead(out) -> list[str]:
    return [d["reason"] for d in out.dead_letters]


def _canonical(router: Router, cid: str) -> str | None:
    """The id whose state holds `cid`'s profile: `cid` itself, or the alias it points to."""
    eng = router.engines[partition_for(cid, 4)]
    if eng.consumer(cid) is not None:
        return cid
    return eng._alias(cid)


def test_identify_back_and_forth_is_an_identity_conflict_and_the_first_user_stays_canonical():
    router = Router(RULES, 4)
    router.process(anon_track("A", "Product Viewed", T0))
    first = router.process(identify("B", T0 + 1, anon="A"))
    back = router.process(identify("A", T0 + 2, anon="B", email="a@example.com"))
    assert _dead(first) == [] and _dead(back) == ["identity_conflict"]
    assert "cycle" in back.dead_letters[0]["message"]
    assert _canonical(router, "A") == "B" and _canonical(router, "B") == "B"
    user = router.engines[partition_for("B", 4)].consumer("B")
    assert user is not None and user.views == 1 and user.email is None  # nothing applied
    # later events of either id still reach B
    router.process(anon_track("A", "Product Viewed", T0 + 3))
    assert user.views == 2


def test_a_three_id_cycle_never_merges_a_user_into_another_user():
    router = Router(RULES, 4)
    router.process(identify("B", T0, anon="A"))
    router.process(identify("C", T0 + 1, anon="B"))  # B holds a user id: not merged into C
    out = router.process(identify("A", T0 + 2, anon="C"))  # A is B's: C is a user, not merged
    assert _dead(out) == []
    assert _canonical(router, "A") == "B"
    assert _canonical(router, "B") == "B" and _canonical(router, "C") == "C"
    assert router.stats()["merges_refused"] == 2


def test_an_anonymous_id_stays_with_the_first_user_it_merged_into():
    router = Router(RULES, 4)
    router.process(anon_track("shared-device", "Product Viewed", T0))
    router.process(identify("alice", T0 + 1, anon="shared-device"))
    out = router.process(identify("bob", T0 + 2, anon="shared-device", email="bob@example.com"))
    assert _dead(out) == []  # bob's identify is applied to bob, without the merge
    bob = router.engines[partition_for("bob", 4)].consumer("bob")
    assert bob is not None and bob.email == "bob@example.com" and bob.views == 0
    assert _canonical(router, "shared-device") == "alice"
    assert router.stats()["merges_refused"] == 1


def test_merges_into_one_user_are_bounded_and_the_one_beyond_is_an_identity_conflict():
    from streams.engine.core import MAX_MERGES

    router = Router(RULES, 4)
    for i in range(MAX_MERGES):
        router.process(anon_track(f"anon-{i}", "Product Viewed", T0 + i))
        assert _dead(router.process(identify("u", T0 + i + 0.5, anon=f"anon-{i}"))) == []
    again = router.process(identify("u", T0 + 500, anon="anon-7"))  # merged already: fine
    beyond = router.process(identify("u", T0 + 501, anon="anon-new"))
    assert _dead(again) == [] and _dead(beyond) == ["identity_conflict"]
    user = router.engines[partition_for("u", 4)].consumer("u")
    assert user is not None and len(user.aliases) == MAX_MERGES and user.views == MAX_MERGES
    assert _canonical(router, "anon-new") is None


def _cycle(router: Router, ids: list[str]) -> None:
    """Alias links ids[0] -> ids[1] -> ... -> ids[0], as a race or an older release left them."""
    for i, cid in enumerate(ids):
        target = ids[(i + 1) % len(ids)]
        router.engines[partition_for(cid, 4)].store.put("a/" + cid, target.encode())


def test_an_event_caught_in_a_cycle_of_aliases_is_an_identity_conflict_and_the_cycle_is_cut():
    router = Router(RULES, 4)
    _cycle(router, ["A", "B", "C"])
    out = router.process(track("A", "Product Viewed", T0))
    assert _dead(out) == ["identity_conflict"]
    assert router.stats()["identity_cycles_cut"] == 1
    router.process(track("A", "Product Viewed", T0 + 1))  # reaches one consumer now
    assert sum(1 for cid in "ABC" if router.engines[partition_for(cid, 4)].consumer(cid)) == 1
    assert router.stats()["dead_letters"] == 1


def test_a_merge_caught_in_a_cycle_of_aliases_settles_on_one_consumer():
    from streams.engine.outputs import MergeIn
    from streams.engine.state import ConsumerState

    router = Router(RULES, 4)
    _cycle(router, ["A", "B"])
    state = ConsumerState("X", T0)
    state.views = 3
    router.receive(MergeIn("A", "X", state))
    holders = [c for c in "AB" if router.engines[partition_for(c, 4)].consumer(c) is not None]
    assert len(holders) == 1
    held = router.engines[partition_for(holders[0], 4)].consumer(holders[0])
    assert held is not None and held.views == 3 and "X" in held.aliases
