"""A dry run: the rules in force and edited rules over the same recent input, compared.

Both rule sets run in this process, each in its own `streams.runtime.Runtime`, over one read of
the input topics' last hours (`connectors.sources.topics.read_range`, the reader of `replay
--from-topics`), and both are closed at the end of the range so the timers due by then fire.
The comparison is of what the rules would have produced: segment sizes at the end, triggers
per campaign, suppressions per reason and the consumers targeted (a trigger not held out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.sources.topics import read_range
from streams.contract import DEFAULT_PARTITIONS, input_topic_names
from streams.engine.events import iso
from streams.engine.outputs import Outputs
from streams.engine.rules import RuleSet
from streams.runtime import Runtime

#: Records read at most; a longer range is cut there and the answer says so.
MAX_RECORDS = 1_000_000
#: Consumer ids listed per side (the counts are exact).
SAMPLE = 20


@dataclass
class Tally:
    """What one rule set produced over the range."""

    segments: Counter[str] = field(default_factory=Counter)
    triggers: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    targeted: set[str] = field(default_factory=set)

    def add(self, out: Outputs) -> None:
        for rec in out.segment_changes:
            self.segments[str(rec["segment"])] += 1 if rec["change"] == "entered" else -1
        for rec in out.triggers:
            self.triggers[str(rec["campaign"])] += 1
            if not rec.get("holdout"):
                self.targeted.add(str(rec["consumer_id"]))
        for rec in out.suppressed:
            self.suppressed[str(rec["reason"])] += 1


def _rows(current: Counter[str], proposed: Counter[str]) -> list[dict[str, Any]]:
    names = sorted(set(current) | set(proposed))
    return [
        {
            "name": n,
            "current": current.get(n, 0),
            "proposed": proposed.get(n, 0),
            "delta": proposed.get(n, 0) - current.get(n, 0),
        }
        for n in names
    ]


def compare(
    records: Iterable[tuple[str, str, bytes | dict[str, Any]]],
    current: RuleSet,
    proposed: RuleSet,
    close_at: float,
    partitions: int = DEFAULT_PARTITIONS,
    max_records: int = MAX_RECORDS,
) -> dict[str, Any]:
    """Run both rule sets over (source, offset, raw) records, then close both at `close_at`."""
    runs = [(Runtime(current, partitions), Tally()), (Runtime(proposed, partitions), Tally())]
    n = 0
    truncated = False
    for source, offset, raw in records:
        if n >= max_records:
            truncated = True
            break
        n += 1
        data = orjson.dumps(raw) if isinstance(raw, dict) else raw  # each engine its own copy
        for runtime, tally in runs:
            tally.add(runtime.process(data, source, offset))
    for runtime, tally in runs:
        tally.add(runtime.close(close_at))
    (_, cur), (_, new) = runs
    only_current = sorted(cur.targeted - new.targeted)
    only_proposed = sorted(new.targeted - cur.targeted)
    segments = _rows(cur.segments, new.segments)
    campaigns = _rows(cur.triggers, new.triggers)
    suppressed = _rows(cur.suppressed, new.suppressed)
    return {
        "records": n,
        "truncated": truncated,
        "current_version": current.version,
        "proposed_version": proposed.version,
        "segments": segments,
        "campaigns": campaigns,
        "suppressed": suppressed,
        "consumers": {
            "both": len(cur.targeted & new.targeted),
            "only_current": len(only_current),
            "only_proposed": len(only_proposed),
            "sample_only_current": only_current[:SAMPLE],
            "sample_only_proposed": only_proposed[:SAMPLE],
        },
        "changed": bool(
            only_current
            or only_proposed
            or any(r["delta"] for r in (*segments, *campaigns, *suppressed))
        ),
    }


def dry_run(
    bootstrap: str,
    current: RuleSet,
    proposed: RuleSet,
    since: float,
    until: float,
    prefix: str | None = None,
    max_records: int = MAX_RECORDS,
) -> dict[str, Any]:
    """`compare` over [since, until) of the input topics; undecodable records are skipped
    (both rule sets would dead-letter them alike)."""
    records, counts = read_range(bootstrap, since, until, input_topic_names(prefix))
    distinct = set(counts.values())
    partitions = distinct.pop() if len(distinct) == 1 else DEFAULT_PARTITIONS
    skipped = 0

    def triples() -> Iterable[tuple[str, str, bytes | dict[str, Any]]]:
        nonlocal skipped
        for rec in records:
            if rec.error is not None:
                skipped += 1
                continue
            yield rec.base_topic, rec.where, rec.value

    feed = triples()
    try:
        result = compare(feed, current, proposed, until, partitions, max_records)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    result.update(since=iso(since), until=iso(until), undecodable=skipped)
    return result
