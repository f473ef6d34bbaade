"""The worker's web server against real workers on the embedded broker: metrics checked
against the outputs counted from the topics, profile look-ups routed between two workers, and
the live profile's features equal to replay's profiles.jsonl for the same input."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from connectors.broker import EmbeddedBroker
from streams.contract import DEAD_LETTERS, PROFILES, SEGMENT_CHANGES, SUPPRESSED, TRIGGER_TOPICS
from streams.engine.partitioning import partition_for
from streams.web.lookup import fetch
from tests.integration.test_live_worker import (
    PARTITIONS,
    ROOT,
    Live,
    owned_by,
    read_jsonl,
    replay,
    synthetic,
    write_jsonl,
)

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def stack(broker: EmbeddedBroker, unique: str, tmp_path: Path) -> Iterator[Live]:
    lv = Live(broker, unique, tmp_path)
    topics = [SEGMENT_CHANGES, *TRIGGER_TOPICS, DEAD_LETTERS, PROFILES, SUPPRESSED]
    lv._consumer.assign(  # (Live reads no suppressions)
        [TopicPartition(lv.prefix + t, p, 0) for t in topics for p in range(PARTITIONS)]
    )
    try:
        yield lv
    finally:
        lv.stop()


def web_url(live: Live, name: str, timeout: float = 30.0) -> str:
    """The URL the worker printed at start (`worker web: URL`)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(r"^worker web: (http://\S+)$", live.log(name), re.MULTILINE)
        if m:
            return m.group(1)
        time.sleep(0.2)
    pytest.fail(f"worker {name} printed no web URL: {live.log(name)[-2000:]}")


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url + "metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def by(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of metric `name` by the values of `labels` (zeros left out)."""
    out: dict[tuple[str, ...], float] = {}
    for (n, lab), v in samples.items():
        if n == name and v:
            d = dict(lab)
            out[tuple(d[k] for k in labels)] = v
    return out


def test_metrics_agree_with_the_outputs_counted_from_the_topics(
    stack: Live, tmp_path: Path
) -> None:
    live = stack
    events = synthetic(200, 2500, seed=21)
    live.produce(events)
    live.produce_raw("clickstream", "bad-1", b"{not json")
    live.start_worker("w1")
    url = web_url(live, "w1")
    rep_triggers, rep_changes = replay(write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "r")
    live.wait_for(
        lambda: len(set(live.trigger_ids())) >= len(rep_triggers)
        and sum(live.changes().values()) >= sum(rep_changes.values())
        and len(live.records(DEAD_LETTERS)) >= 1,
        timeout=120,
        what="the outputs of replay",
    )
    live.poll(2.0)
    m = scrape(url)

    triggers = Counter(
        (r["campaign"], r["offer"], r["kind"], str(r["holdout"]).lower())
        for t in TRIGGER_TOPICS
        for r in live.records(t)
    )
    assert by(m, "micromarketing_triggers_total", "campaign", "offer", "kind", "holdout") == {
        k: float(v) for k, v in triggers.items()
    }
    suppressed = Counter((r["campaign"], r["reason"]) for r in live.records(SUPPRESSED))
    assert by(m, "micromarketing_suppressions_total", "campaign", "reason") == {
        k: float(v) for k, v in suppressed.items()
    }
    dead = Counter(r["reason"] for r in live.records(DEAD_LETTERS))
    assert by(m, "micromarketing_dead_letters_total", "reason") == {
        (k,): float(v) for k, v in dead.items()
    }
    changes = Counter((r["segment"], r["change"]) for r in live.records(SEGMENT_CHANGES))
    assert by(m, "micromarketing_segment_changes_total", "segment", "change") == {
        k: float(v) for k, v in changes.items()
    }
    # a fresh state: each segment's members are its entries less its exits
    members = Counter[str]()
    for (seg, change), n in changes.items():
        members[seg] += n if change == "entered" else -n
    assert by(m, "micromarketing_segment_members", "segment") == {
        (k,): float(v) for k, v in members.items() if v
    }
    inputs = by(m, "micromarketing_input_records_total", "topic")
    assert sum(inputs.values()) == len(events) + 1
    assert set(by(m, "micromarketing_consumer_lag", "topic", "partition").values()) <= {0.0}
    latency_count = m[("micromarketing_event_to_output_latency_seconds_count", ())]
    produced = sum(len(live.records(t)) for t in (*TRIGGER_TOPICS, SUPPRESSED, SEGMENT_CHANGES))
    assert latency_count >= produced  # (profiles and dead letters too)
    assert m[("micromarketing_partitions", ())] == PARTITIONS
    assert m[("micromarketing_commits_total", ())] > 0
    assert m[("micromarketing_rebalances_total", ())] >= 1
    timers = by(m, "micromarketing_pending_timers", "kind")
    assert timers.get(("recheck",), 0) > 0  # (the bike shop's rfm segments re-check buyers)


def test_a_profile_asked_of_the_non_owner_is_the_owners_answer(stack: Live, tmp_path: Path) -> None:
    live = stack
    events = synthetic(150, 1500, seed=22, merges=False)
    live.produce(events)
    live.start_worker("w1")
    live.start_worker("w2")
    urls = {name: web_url(live, name) for name in ("w1", "w2")}
    owned: dict[str, set[int]] = {}

    def split() -> bool:
        owned.update({name: owned_by(live, name) for name in urls})
        return all(owned.values()) and sum(len(p) for p in owned.values()) == PARTITIONS

    live.wait_for(split, timeout=120, what="two workers sharing the partitions")
    live.wait_for(lambda: len(live.records(SEGMENT_CHANGES)) > 50, timeout=120, what="outputs")
    live.poll(3.0)
    ids = sorted({e["userId"] for e in events if e.get("userId")})
    checked = 0
    for name, other in (("w1", "w2"), ("w2", "w1")):
        mine = [u for u in ids if partition_for(u, PARTITIONS) in owned[name]][:3]
        for uid in mine:
            owner_status, owner_body = fetch(urls[name], uid)
            routed_status, routed_body = fetch(urls[other], uid)
            assert owner_status == routed_status == 200, (owner_body, routed_body)
            assert routed_body == owner_body
            assert owner_body["partition"] == partition_for(uid, PARTITIONS)
            checked += 1
    assert checked == 6
    status, body = fetch(urls["w1"], "nobody-at-all")
    assert status == 404 and body["code"] == "not_found"


def test_the_live_profile_has_the_features_of_replays_profiles_file(
    stack: Live, tmp_path: Path
) -> None:
    live = stack
    events = synthetic(120, 1500, seed=23)
    replay(write_jsonl(tmp_path / "ev.jsonl", events), tmp_path / "r")
    expected = {p["consumer_id"]: p for p in read_jsonl(tmp_path / "r" / "profiles.jsonl")}
    assert len(expected) == len(set(expected))  # one line per consumer
    live.produce(events)
    live.start_worker("w1")
    url = web_url(live, "w1")
    last = max(expected.values(), key=lambda p: p["features"]["events"])["consumer_id"]

    def caught_up() -> bool:
        status, body = fetch(url, last)
        return status == 200 and body["features"] == expected[last]["features"]

    live.wait_for(caught_up, timeout=120, what="the worker to apply every event")
    time.sleep(1.0)
    sample = sorted(expected)[:: max(1, len(expected) // 25)]
    for cid in sample:
        status, body = fetch(url, cid)
        assert status == 200, body
        want = expected[cid]
        assert body["features"] == want["features"], cid
        assert body["at"] == want["at"]
        assert list(body["segments"]) == want["segments"]
        assert body["timers"] == want["timers"]
        assert body["traits"] == want["traits"]

    # the command prints the same profile
    out = subprocess.run(
        [sys.executable, "-m", "micromarketing", "profile", sample[0], "--worker", url],
        cwd=ROOT, env=live.env, capture_output=True, text=True, check=True, timeout=60,
    )
    assert orjson.loads(out.stdout)["features"] == expected[sample[0]]["features"]

    # the profiles topic carries the features too (snapshots every few seconds)
    live.wait_for(
        lambda: any("features" in p and p["consumer_id"] == last for p in live.records(PROFILES)),
        timeout=30,
        what="a profile snapshot on the topic",
    )
    snap = [p for p in live.records(PROFILES) if p["consumer_id"] == last and "features" in p][-1]
    assert snap["features"]["events"] == expected[last]["features"]["events"]
