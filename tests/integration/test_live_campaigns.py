"""Live conversions and campaign results equal replay's: one worker on the embedded broker."""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition

from connectors.broker import EmbeddedBroker
from streams.contract import CONVERSIONS, TRIGGER_TOPICS
from streams.measure.results import CampaignResults
from tests.integration.test_live_worker import (
    PARTITIONS,
    Live,
    canon,
    event_time,
    read_jsonl,
    replay,
    synthetic,
    write_jsonl,
)
from tests.integration.test_worker_web import web_url

pytestmark = pytest.mark.integration


class LiveWithConversions(Live):
    """Live, reading the conversions topic besides the triggers."""

    def __init__(self, broker: EmbeddedBroker, unique: str, tmp: Path) -> None:
        super().__init__(broker, unique, tmp)
        topics = [*TRIGGER_TOPICS, CONVERSIONS]
        self._consumer.assign(
            [TopicPartition(self.prefix + t, p, 0) for t in topics for p in range(PARTITIONS)]
        )


@pytest.fixture
def live(broker: EmbeddedBroker, unique: str, tmp_path: Path) -> Iterator[LiveWithConversions]:
    lv = LiveWithConversions(broker, unique, tmp_path)
    try:
        yield lv
    finally:
        lv.stop()


def test_one_worker_writes_replays_conversions_and_the_same_campaign_results(
    live: LiveWithConversions, tmp_path: Path
) -> None:
    events = synthetic(200, 6000, seed=14)
    out = tmp_path / "replay"
    replay(write_jsonl(tmp_path / "ev.jsonl", events), out)
    rep_conversions = (out / "conversions.jsonl").read_bytes().splitlines()
    rep_triggers = read_jsonl(out / "triggers.jsonl")
    assert rep_conversions and any(orjson.loads(c)["holdout"] for c in rep_conversions)
    live.produce(events)
    live.start_worker("w1")
    live.wait_for(
        lambda: (
            len(live.records(CONVERSIONS)) >= len(rep_conversions)
            and len(live.trigger_ids()) >= len(rep_triggers)
        ),
        timeout=120,
        what="the conversions and triggers of replay",
    )
    live.poll(2.0)  # nothing more may come
    # the same bytes both ways
    assert Counter(live.raw[CONVERSIONS]) == Counter(rep_conversions)
    live_triggers = [t for topic in TRIGGER_TOPICS for t in live.records(topic)]
    assert Counter(map(canon, live_triggers)) == Counter(map(canon, rep_triggers))
    # and the same campaign figures, over the triggers whose window closed by the end
    results = CampaignResults()
    for trigger in live_triggers:
        results.add_trigger(trigger)
    for conversion in live.records(CONVERSIONS):
        results.add_conversion(conversion)
    end = datetime.fromtimestamp(max(event_time(e) for e in events), UTC)
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["campaigns"] and results.report(end) == report["campaigns"]
    # the worker's own figures over HTTP count the same triggers and conversions (no window
    # filter: live, the page shows today's figures)
    with urllib.request.urlopen(web_url(live, "w1") + "v1/campaigns", timeout=10) as resp:
        served = orjson.loads(resp.read())
    assert served["campaigns"] == results.report(None)
