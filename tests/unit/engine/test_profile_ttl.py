"""settings.profile_ttl: a profile with no event for that long is erased like `forget`, through
one due-time index entry per consumer that is moved on lazily (events never touch it)."""

from __future__ import annotations

from typing import Any

import orjson

from streams.engine.core import Engine
from streams.engine.events import iso
from streams.engine.outputs import MergeOut, Outputs
from streams.engine.store import MemoryStore
from streams.engine.timers import TTL
from streams.runtime import Runtime
from tests.unit.engine.helpers import DAY, T0, anon_track, identify, rules, run, track

RULES = """
settings:
  profile_ttl: 2d
  max_clock_skew: 30d
segments:
  - name: buyers
    when: orders >= 1
triggers:
  - name: cart
    kind: retargeting
    on: Product Added
    wait: 3d
    offer: x
"""


def _engine(text: str = RULES, store: MemoryStore | None = None) -> Engine:
    return Engine(rules(text), store if store is not None else MemoryStore())


def _order(uid: str, t: float) -> dict[str, Any]:
    return track(uid, "Order Completed", t, order_id=f"o-{uid}-{t}", revenue=20.0)


def _ttl_keys(store: MemoryStore) -> list[str]:
    return [k for k in store.data if k.startswith("t/") and k.endswith(f',"{TTL}"]')]


def _as_json(out: Outputs) -> list[bytes]:
    return [orjson.dumps(r) for r in (*out.segment_changes, *out.profiles, *out.triggers)]


def test_a_profile_without_an_event_for_profile_ttl_is_erased_exactly_then() -> None:
    store = MemoryStore()
    eng = _engine(store=store)
    run(eng, identify("u1", T0, email="u1@example.com"), _order("u1", T0 + 1),
        track("u1", "Product Added", T0 + 2, product_id="p"))
    assert not eng.advance(T0 + 2 + 2 * DAY - 1).profiles
    out = eng.advance(T0 + 2 + 2 * DAY)
    at = iso(T0 + 2 + 2 * DAY)
    assert out.profiles == [{"consumer_id": "u1", "email": None, "consented": False, "at": at}]
    assert [(c["segment"], c["change"], c["at"]) for c in out.segment_changes] == [
        ("buyers", "exited", at)]
    eng.flush()
    assert not [k for k in store.data if k.startswith(("c/", "t/"))]
    assert eng.stats["expired"] == 1 and eng.erasures == 1
    assert not eng.advance(T0 + 10 * DAY).triggers  # the cart timer went with the profile


def test_an_event_in_between_postpones_the_erasure_to_profile_ttl_after_it() -> None:
    store = MemoryStore()
    eng = _engine(store=store)
    run(eng, identify("u1", T0, email="u1@example.com"))
    run(eng, track("u1", "Product Viewed", T0 + DAY, product_id="p"))
    eng.flush()
    assert len(_ttl_keys(store)) == 1  # one entry, where the first event put it
    assert not eng.advance(T0 + 3 * DAY - 1).profiles
    eng.flush()
    assert len(_ttl_keys(store)) == 1  # it popped early and moved on
    assert eng.advance(T0 + 3 * DAY).profiles[0]["at"] == iso(T0 + 3 * DAY)


def test_events_do_not_write_the_index() -> None:
    store = MemoryStore()
    eng = _engine(store=store)
    run(eng, identify("u1", T0))
    eng.flush()
    before = sorted(k for k in store.data if k.startswith("t/"))
    for i in range(1, 20):
        run(eng, track("u1", "Product Viewed", T0 + i * 60, product_id="p"))
    eng.flush()
    assert sorted(k for k in store.data if k.startswith("t/")) == before


def test_the_erasure_removes_the_population_contribution() -> None:
    eng = _engine()
    run(eng, _order("u1", T0), _order("u2", T0 + DAY))
    eng.advance(T0 + 2 * DAY)  # u1 erased, u2 not yet
    alone = _engine()
    run(alone, _order("u2", T0 + DAY))
    for mine, theirs in (
        (eng.population.recency, alone.population.recency),
        (eng.population.frequency, alone.population.frequency),
        (eng.population.monetary, alone.population.monetary),
    ):
        assert {k: n for k, n in mine.counts.items() if n} == theirs.counts
        assert mine.total == theirs.total == 1


def test_a_merge_carries_the_latest_activity_to_the_merged_profile() -> None:
    router = Runtime(rules(RULES), 4)
    router.process(anon_track("anon-1", "Product Viewed", T0 + DAY, product_id="p"))
    router.process(identify("user-1", T0, email="u@example.com"))
    router.process(identify("user-1", T0 + DAY + 60, anon="anon-1"))  # merges anon-1 in
    erased = router.advance(T0 + 3 * DAY + 59)
    assert not erased.profiles
    out = router.advance(T0 + 3 * DAY + 60)
    assert [p["consumer_id"] for p in out.profiles] == ["user-1"]
    assert out.profiles[0]["at"] == iso(T0 + 3 * DAY + 60)
    router.flush()
    assert router.consumers() == 0


def test_a_profile_made_by_a_merge_alone_gets_its_entry() -> None:
    router = Runtime(rules(RULES), 4)
    router.process(anon_track("anon-2", "Product Viewed", T0, product_id="p"))
    router.receive(MergeOut("anon-2", "user-2"))  # user-2 has no profile of its own yet
    assert not router.advance(T0 + 2 * DAY - 1).profiles
    assert [p["consumer_id"] for p in router.advance(T0 + 2 * DAY).profiles] == ["user-2"]


def test_a_trigger_may_not_be_named_like_the_index_entries(tmp_path: Any) -> None:
    from streams.engine.rules.loader import RulesError, load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("name: cart", "name: '~ttl'"))
    try:
        load_rules(path)
    except RulesError as exc:
        assert "may not start with '~'" in str(exc)
    else:
        raise AssertionError("a trigger named ~ttl was accepted")


def test_a_restart_from_the_store_erases_like_an_uninterrupted_replay() -> None:
    events = [identify(f"u{i}", T0 + i * 3600, email=f"u{i}@example.com") for i in range(6)]
    events += [track(f"u{i}", "Product Added", T0 + DAY + i * 3600, product_id="p")
               for i in range(0, 6, 2)]
    events += [_order("u1", T0 + 2 * DAY)]
    straight = _engine()
    whole = Outputs()
    for ev in events:
        whole.extend(straight.process(ev))
    whole.extend(straight.advance(T0 + 8 * DAY))

    store = MemoryStore()
    first = _engine(store=store)
    parts = Outputs()
    for ev in events[:7]:
        parts.extend(first.process(ev))
    first.flush()
    again = _engine(store=store)  # a restart: the index is read from the store
    for ev in events[7:]:
        parts.extend(again.process(ev))
    parts.extend(again.advance(T0 + 8 * DAY))
    assert _as_json(parts) == _as_json(whole)
    assert len(whole.profiles) >= 6 + 6  # every profile written, then erased


def test_profile_ttl_is_off_by_default() -> None:
    eng = _engine(RULES.replace("  profile_ttl: 2d\n", ""))
    run(eng, identify("u1", T0, email="u1@example.com"))
    assert not eng.advance(T0 + 1000 * DAY).profiles
    eng.flush()
    assert eng.store.get("c/u1") is not None
