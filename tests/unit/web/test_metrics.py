"""The scrape-time collector over a real runtime and meter (the Kafka intake is a stand-in that
reports high watermarks: no consumer can run here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.runtime import Runtime
from streams.web.meter import Meter
from streams.web.metrics import exposition, registry_for
from tests.unit.engine.helpers import T0, rules, track

RULES = rules(
    """
segments:
  - name: browser
    when: views >= 2
"""
)
PREFIX = "t1."
INPUTS = [PREFIX + "clickstream", PREFIX + "purchases"]


class Watermarks:
    """What the collector asks of the intake consumer: the high watermark of a partition."""

    def __init__(self) -> None:
        self.high: dict[tuple[str, int], int] = {}

    def get_watermark_offsets(self, tp: Any, cached: bool = False) -> tuple[int, int]:
        return 0, self.high.get((tp.topic, tp.partition), -1)


@dataclass
class Stats:
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeWorker:
    runtime: Runtime
    meter: Meter
    flow: Stats = field(default_factory=Stats)
    intake: Watermarks = field(default_factory=Watermarks)
    input_topics: list[str] = field(default_factory=lambda: list(INPUTS))
    commits: int = 0

    def stores(self) -> dict[int, Any]:
        return {p: e.store for p, e in self.runtime.engines.items()}


def scrape(worker: FakeWorker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exposition(registry_for(worker, PREFIX)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def worker() -> FakeWorker:
    rt = Runtime(RULES, 2)
    return FakeWorker(rt, Meter(rt.partition_of))


def test_input_records_count_the_offsets_applied_since_the_partition_was_taken() -> None:
    w = worker()
    w.meter.started[(INPUTS[0], 0)] = 9  # taken at offset 9: 0..9 were applied before
    assert w.runtime.applies(INPUTS[0], 0, 10) and w.runtime.applies(INPUTS[0], 0, 14)
    assert w.runtime.applies(INPUTS[1], 1, 0)
    got = scrape(w)
    assert got[("micromarketing_input_records_total", (("topic", "clickstream"),))] == 5
    assert got[("micromarketing_input_records_total", (("topic", "purchases"),))] == 1
    w.runtime.applies(INPUTS[0], 0, 20)
    assert scrape(w)[("micromarketing_input_records_total", (("topic", "clickstream"),))] == 11


def test_lag_is_the_high_watermark_less_the_next_offset_to_apply() -> None:
    w = worker()
    w.runtime.applies(INPUTS[0], 1, 6)
    w.intake.high[(INPUTS[0], 1)] = 10
    got = scrape(w)
    assert got[("micromarketing_consumer_lag", (("partition", "1"), ("topic", "clickstream")))] == 3


def test_outputs_sizes_and_counters_appear_with_their_labels() -> None:
    w = worker()
    out = w.runtime.process(track("u1", "Product Viewed", T0, product_id="p", price=1.0))
    out.extend(w.runtime.process(track("u1", "Product Viewed", T0 + 1, product_id="p", price=1.0)))
    w.meter.members = {0: {}, 1: {}}
    for base, key, record in out.records():
        w.meter.observe(base, key, record, -1.0)
    w.meter.observe("dead-letters", "clickstream", {"reason": "invalid_json"}, -1.0)
    w.meter.rebalances, w.commits = 2, 7
    w.flow.stats.update({"segment-changes": 1, "events": 99})
    got = scrape(w)
    assert got[("micromarketing_segment_members", (("segment", "browser"),))] == 1
    assert got[("micromarketing_segment_changes_total",
                (("change", "entered"), ("segment", "browser")))] == 1
    assert got[("micromarketing_dead_letters_total", (("reason", "invalid_json"),))] == 1
    assert got[("micromarketing_output_records_total", (("topic", "segment-changes"),))] == 1
    assert ("micromarketing_output_records_total", (("topic", "events"),)) not in got
    assert got[("micromarketing_rebalances_total", ())] == 2
    assert got[("micromarketing_commits_total", ())] == 7
    assert got[("micromarketing_partitions", ())] == 2
    assert got[("micromarketing_event_to_output_latency_seconds_count", ())] == 0
