"""What the console knows about the output topics: bounded aggregates and a bounded feed.

`ConsoleState.apply(topic, record)` takes one record of an output topic (base name) at a time;
nothing here does I/O, so the aggregates are tested without a broker. Memory stays bounded
however long the topics are: counters per segment, campaign and reason, time series of at most
`MAX_BUCKETS` buckets (the bucket width doubles when the records span more), and the last
`FEED_SIZE` triggers.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.contract import CONTROL, CONVERSIONS, SEGMENT_CHANGES, SUPPRESSED, TRIGGER_TOPICS
from streams.engine.events import EventError, iso, parse_time
from streams.engine.rules.loader import version_of

MAX_BUCKETS = 240
FEED_SIZE = 50
FIRST_WIDTH = 10.0  # seconds per bucket before the first doubling
RATE_WINDOW = 60.0  # wall-clock seconds the live rates are measured over
MAX_VERSIONS = 20


class Timeline:
    """Counts per name and time bucket; all names share one grid of at most `max_buckets`
    buckets, whose width doubles (merging neighbours) when the times span more."""

    def __init__(self, width: float = FIRST_WIDTH, max_buckets: int = MAX_BUCKETS) -> None:
        self.width = width
        self.max_buckets = max_buckets
        self.counts: dict[str, dict[int, float]] = {}
        self.lo: int | None = None
        self.hi: int | None = None

    def add(self, name: str, t: float, value: float = 1.0) -> None:
        """Count `value` for `name` at time `t` (epoch seconds)."""
        i = int(t // self.width)
        buckets = self.counts.setdefault(name, {})
        buckets[i] = buckets.get(i, 0.0) + value
        self.lo = i if self.lo is None or i < self.lo else self.lo
        self.hi = i if self.hi is None or i > self.hi else self.hi
        while self.hi - self.lo + 1 > self.max_buckets:
            self._coarsen()

    def _coarsen(self) -> None:
        self.width *= 2
        for name, buckets in self.counts.items():
            merged: dict[int, float] = {}
            for i, v in buckets.items():
                merged[i // 2] = merged.get(i // 2, 0.0) + v
            self.counts[name] = merged
        assert self.lo is not None and self.hi is not None
        self.lo, self.hi = self.lo // 2, self.hi // 2

    def to_json(self, cumulative: bool = False) -> dict[str, Any]:
        """`{"start", "width", "series": {name: [value per bucket]}}`, dense from the first
        bucket to the last; `cumulative` gives running totals (sizes from net changes)."""
        if self.lo is None or self.hi is None:
            return {"start": None, "width": self.width, "series": {}}
        series: dict[str, list[float]] = {}
        for name, buckets in sorted(self.counts.items()):
            values = [buckets.get(i, 0.0) for i in range(self.lo, self.hi + 1)]
            if cumulative:
                total = 0.0
                for k, v in enumerate(values):
                    total += v
                    values[k] = total
            series[name] = values
        return {"start": iso(self.lo * self.width), "width": self.width, "series": series}


class Rates:
    """Records per kind over the last `window` wall-clock seconds (live rates), counted per
    whole second so memory does not grow with the rate."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self.seconds: deque[tuple[int, Counter[str]]] = deque()

    def add(self, kind: str, now: float) -> None:
        second = int(now)
        if not self.seconds or self.seconds[-1][0] != second:
            self.seconds.append((second, Counter()))
        self.seconds[-1][1][kind] += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.seconds and self.seconds[0][0] <= now - self.window - 1:
            self.seconds.popleft()

    def per_minute(self, now: float) -> dict[str, float]:
        self._trim(now)
        counts: Counter[str] = Counter()
        for second, per_kind in self.seconds:
            if second > now - self.window - 1:
                counts.update(per_kind)
        return {k: round(v * 60.0 / self.window, 2) for k, v in sorted(counts.items())}


def _time(record: Mapping[str, Any], *fields: str) -> float | None:
    for name in fields:
        value = record.get(name)
        if isinstance(value, str):
            try:
                return parse_time(value)
            except (EventError, ValueError, OverflowError):
                return None
    return None


class ConsoleState:
    """The aggregates of the output topics, fed one record at a time."""

    def __init__(self, results: Any = None) -> None:
        self.results = results  # a streams.measure.results.CampaignResults, when installed
        self.segment_sizes: Counter[str] = Counter()
        self.segment_history = Timeline()
        self.triggers: Counter[str] = Counter()
        self.triggers_holdout: Counter[str] = Counter()
        self.offers: Counter[str] = Counter()
        self.trigger_history = Timeline()
        self.suppressions: Counter[str] = Counter()
        self.suppression_history = Timeline()
        self.conversions = 0
        self.revenue = 0.0
        self.feed: deque[dict[str, Any]] = deque(maxlen=FEED_SIZE)
        self.rates = Rates()
        self.records: Counter[str] = Counter()
        self.undecodable = 0
        self.versions: dict[str, str] = {}  # rules_version seen in outputs -> last seen (iso)
        self.control_rules: dict[str, Any] | None = None
        #: the latest event time of the outputs read: the stream's clock as the console sees it
        self.clock: float | None = None
        self.publishes = 0

    def apply(self, topic: str, record: Mapping[str, Any], now: float | None = None) -> None:
        """Take one record of output topic `topic` (base name) into the aggregates."""
        now = time.time() if now is None else now
        self.records[topic] += 1
        if topic == SEGMENT_CHANGES:
            self._segment_change(record)
        elif topic in TRIGGER_TOPICS:
            self._trigger(record, now)
        elif topic == SUPPRESSED:
            reason = str(record.get("reason", "?"))
            self.suppressions[reason] += 1
            self.rates.add("suppressed", now)
            t = _time(record, "due_at", "at")
            if t is not None:
                self.suppression_history.add(reason, t)
                self._tick(t)
        elif topic == CONVERSIONS:
            self.conversions += 1
            t = _time(record, "converted_at")
            if t is not None:
                self._tick(t)
            revenue = record.get("revenue")
            if isinstance(revenue, (int, float)):
                self.revenue += float(revenue)
            if self.results is not None:
                self.results.add_conversion(record)
        elif topic == CONTROL:
            self._control(record, now)
        version = record.get("rules_version")
        if isinstance(version, str) and topic != CONTROL:
            self._version(version, now)

    def _tick(self, t: float) -> None:
        if self.clock is None or t > self.clock:
            self.clock = t

    def _segment_change(self, record: Mapping[str, Any]) -> None:
        segment = str(record.get("segment", "?"))
        delta = 1 if record.get("change") == "entered" else -1
        self.segment_sizes[segment] += delta
        t = _time(record, "at")
        if t is not None:
            self.segment_history.add(segment, t, delta)
            self._tick(t)

    def _trigger(self, record: Mapping[str, Any], now: float) -> None:
        campaign = str(record.get("campaign", "?"))
        if record.get("holdout"):
            self.triggers_holdout[campaign] += 1
        else:
            self.triggers[campaign] += 1
            self.offers[str(record.get("offer"))] += 1
        self.rates.add("triggers", now)
        t = _time(record, "fired_at", "due_at")
        if t is not None:
            self.trigger_history.add(campaign, t)
            self._tick(t)
        self.feed.append({k: record.get(k) for k in FEED_FIELDS})
        if self.results is not None:
            self.results.add_trigger(record)

    def _control(self, record: Mapping[str, Any], now: float) -> None:
        if record.get("type") != "rules" or not isinstance(record.get("yaml"), str):
            return
        text = str(record["yaml"])
        self.publishes += 1
        self.control_rules = {
            "source": "control topic",
            "version": version_of(text),
            "yaml": text,
            "read_at": iso(now),
        }

    def _version(self, version: str, now: float) -> None:
        if version not in self.versions and len(self.versions) >= MAX_VERSIONS:
            oldest = min(self.versions, key=lambda v: self.versions[v])
            del self.versions[oldest]
        self.versions[version] = iso(now)

    def overview(self, now: float | None = None) -> dict[str, Any]:
        """Everything but the campaign results, as the page's JSON."""
        now = time.time() if now is None else now
        return {
            "now": iso(now),
            "segments": {k: v for k, v in sorted(self.segment_sizes.items())},
            "segment_history": self.segment_history.to_json(cumulative=True),
            "triggers": dict(sorted(self.triggers.items())),
            "triggers_holdout": dict(sorted(self.triggers_holdout.items())),
            "offers": dict(self.offers.most_common(20)),
            "trigger_history": self.trigger_history.to_json(),
            "suppressions": dict(sorted(self.suppressions.items())),
            "suppression_history": self.suppression_history.to_json(),
            "rates_per_minute": self.rates.per_minute(now),
            "conversions": self.conversions,
            "revenue": round(self.revenue, 2),
            "feed": list(reversed(self.feed)),
            "records": dict(sorted(self.records.items())),
            "undecodable": self.undecodable,
            "versions_seen": dict(sorted(self.versions.items(), key=lambda kv: kv[1])),
            "stream_time": None if self.clock is None else iso(self.clock),
        }

    def campaigns(self, closed: bool = False) -> dict[str, Any]:
        """`{"available", "closed", "until", "campaigns"}`: the campaign results of every
        trigger read (as the worker's /v1/campaigns), or with `closed` of those whose
        attribution window closed by `until`, the latest event time read (the stream's time,
        not the wall clock: a replayed or compressed stream has its own)."""
        until = self.clock
        body: dict[str, Any] = {
            "available": self.results is not None,
            "closed": closed,
            "until": None if until is None else iso(until),
            "campaigns": {},
        }
        if self.results is not None and (until is not None or not closed):
            cutoff = None
            if closed and until is not None:
                cutoff = datetime.fromtimestamp(until, UTC)
            body["campaigns"] = self.results.report(cutoff)
        return body


FEED_FIELDS = (
    "trigger_id", "campaign", "kind", "offer", "consumer_id", "fired_at", "holdout", "reason",
    "rules_version",
)


def campaign_results() -> Any:
    """A new `CampaignResults` (owner: attribution), or None when that module is missing."""
    try:
        from streams.measure.results import CampaignResults
    except ImportError:
        return None
    return CampaignResults()
