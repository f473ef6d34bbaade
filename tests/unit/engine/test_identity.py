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
