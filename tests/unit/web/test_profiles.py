"""`GET /v1/profiles/{id}`: the answer's content, and routing between two real web servers of
two runtimes that hold different partitions (Faust's assignment given as its distribution)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from streams.engine.partitioning import partition_for
from streams.runtime import Runtime
from streams.web.lookup import fetch
from streams.web.meter import Meter
from streams.web.profiles import SERVED_BY, ProfileRoutes, owner_in, profile_of
from streams.web.server import WorkerWeb, bind
from tests.unit.engine.helpers import HOUR, MIN, T0, identify, rules, track

N = 4
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
CHANGELOG = "state-changelog"


@dataclass
class Holder:
    runtime: Runtime
    meter: Meter = field(init=False)

    def __post_init__(self) -> None:
        self.meter = Meter(self.runtime.partition_of)

    def apply(self, event: dict[str, Any]) -> None:
        out = self.runtime.process(event)
        for base, key, record in out.records():
            self.meter.observe(base, key, record, -1.0)


def user_on(p: int) -> str:
    return next(u for i in range(500) if partition_for(u := f"user-{i}", N) == p)


def feed(holder: Holder, uid: str) -> None:
    holder.apply(identify(uid, T0, email=f"{uid}@x.y", plan="pro"))
    holder.apply(track(uid, "Product Viewed", T0 + MIN, product_id="p1", price=20.0))
    holder.apply(track(uid, "Product Viewed", T0 + 2 * MIN, product_id="p1", price=20.0))
    holder.apply(track(uid, "Product Added", T0 + 3 * MIN, product_id="p1", price=20.0))


def test_a_profile_holds_features_traits_segments_with_entry_times_timers_and_outputs() -> None:
    uid = user_on(1)
    holder = Holder(Runtime(RULES, N))
    feed(holder, uid)
    p = profile_of(holder, uid)
    assert p is not None
    assert p["consumer_id"] == uid and p["partition"] == 1
    assert p["features"]["views"] == 2 and p["features"]["cart_adds"] == 1
    assert p["traits"] == {"email": f"{uid}@x.y", "plan": "pro"}
    assert p["segments"] == {"browser": {"since": "2026-01-01T00:02:00.000Z"}}
    [timer] = p["timers"]
    assert timer["kind"] == "trigger" and timer["name"] == "cart"
    assert timer["due"] == "2026-01-01T00:33:00.000Z"
    assert [o["topic"] for o in p["recent_outputs"]] == ["profiles", "segment-changes"]
    json.dumps(p)  # (JSON as it is)


def test_a_fired_trigger_shows_in_recent_outputs_and_leaves_the_timers() -> None:
    uid = user_on(2)
    holder = Holder(Runtime(RULES, N))
    feed(holder, uid)
    holder.apply(track(user_on(3), "Page Viewed", T0 + HOUR))  # the clock passes the due time
    p = profile_of(holder, uid)
    assert p is not None and p["timers"] == []
    assert p["recent_outputs"][-1]["topic"] == "triggers.retargeting"
    assert p["recent_outputs"][-1]["record"]["campaign"] == "cart"


def test_the_owner_of_a_partition_is_read_from_the_changelog_distribution() -> None:
    dist = {"http://a:1": {CHANGELOG: [0, 2]}, "http://b:2/": {CHANGELOG: [1, 3], "x": [0]}}
    assert owner_in(dist, CHANGELOG, 2) == "http://a:1/"
    assert owner_in(dist, CHANGELOG, 3) == "http://b:2/"
    assert owner_in(dist, "other", 0) is None
    assert owner_in({}, CHANGELOG, 0) is None


# ------------------------------------------------------------------------------------ two servers
@dataclass
class Cluster:
    holders: list[Holder]
    urls: list[str]
    dist: dict[str, dict[str, list[int]]]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Two workers' web servers on their own event loop (a thread): A holds partitions 0-1,
    B 2-3; each knows the other through the distribution."""
    holders = [Holder(Runtime(RULES, N, held=[0, 1])), Holder(Runtime(RULES, N, held=[2, 3]))]
    socks = [bind("127.0.0.1", None), bind("127.0.0.1", None)]
    webs = [WorkerWeb(s) for s in socks]
    dist: dict[str, dict[str, list[int]]] = {
        webs[0].url: {CHANGELOG: [0, 1]},
        webs[1].url: {CHANGELOG: [2, 3]},
    }
    for web, holder in zip(webs, holders, strict=True):
        routes = ProfileRoutes(holder, lambda p: owner_in(dist, CHANGELOG, p), web.url)
        web.route_hooks.append(routes.add_to)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    for web in webs:
        asyncio.run_coroutine_threadsafe(web.start(), loop).result(10)
    try:
        yield Cluster(holders, [w.url for w in webs], dist)
    finally:
        for web in webs:
            asyncio.run_coroutine_threadsafe(web.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def get(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.read(), r.headers.get(SERVED_BY, "")


def test_a_request_to_the_non_owner_answers_what_the_owner_answers(cluster: Cluster) -> None:
    uid = user_on(3)  # B's
    feed(cluster.holders[1], uid)
    owner = asyncio.run(get(f"{cluster.urls[1]}v1/profiles/{uid}"))
    routed = asyncio.run(get(f"{cluster.urls[0]}v1/profiles/{uid}"))
    assert owner[0] == 200 and routed[0] == 200
    assert routed[1] == owner[1]
    assert routed[2] == owner[2] == cluster.urls[1]
    assert json.loads(routed[1])["features"]["views"] == 2


def test_an_unknown_consumer_is_404_not_found_from_either_worker(cluster: Cluster) -> None:
    uid = user_on(0)  # A's, never seen
    for url in cluster.urls:
        status, body, served = asyncio.run(get(f"{url}v1/profiles/{uid}"))
        assert status == 404 and served == cluster.urls[0]
        assert json.loads(body)["code"] == "not_found"


def test_a_partition_nobody_holds_yet_is_503_and_never_loops(cluster: Cluster) -> None:
    cluster.holders[1].runtime.drop(3)  # partition 3: in the middle of a rebalance, B gave
    cluster.dist[cluster.urls[1]][CHANGELOG] = [2]  # it up and A was given it, but has no
    cluster.dist[cluster.urls[0]][CHANGELOG] = [0, 1, 3]  # engine for it yet
    status, body, _ = asyncio.run(get(f"{cluster.urls[1]}v1/profiles/{user_on(3)}"))
    assert status == 503 and json.loads(body)["code"] == "unavailable"


def test_ids_with_reserved_characters_are_looked_up_as_they_are(cluster: Cluster) -> None:
    uid = next(u for i in range(500) if partition_for(u := f"a b/é?{i}", N) == 2)
    feed(cluster.holders[1], uid)
    status, body = fetch(cluster.urls[0], uid)  # (the CLI's client, through the non-owner)
    assert status == 200 and body["consumer_id"] == uid


def test_unknown_paths_answer_json(cluster: Cluster) -> None:
    status, body, _ = asyncio.run(get(f"{cluster.urls[0]}nope"))
    assert status == 404 and json.loads(body)["code"] == "not_found"
