"""Daily series of a replay's outputs, fed as they are written.

Memory is a few counters per day (per segment, per campaign and offer, per reason), never the
records: a year of history with a dozen segments is a few thousand integers. Days are UTC dates
taken from the record's own time (`at`, `fired_at`, `due_at`, `converted_at`), so the series do
not depend on the order the records came in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

SEGMENT_CHANGES = "segment-changes"
SUPPRESSED = "suppressed"
CONVERSIONS = "conversions"
TRIGGERS_PREFIX = "triggers."

#: the replay files a timeline can be rebuilt from, and the topic of their records
FILES = {
    "segment_changes.jsonl": SEGMENT_CHANGES,
    "triggers.jsonl": TRIGGERS_PREFIX,
    "suppressed.jsonl": SUPPRESSED,
    "conversions.jsonl": CONVERSIONS,
}


#: per kind of record (triggers of every campaign together): its time and the fields counted
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    SEGMENT_CHANGES: ("at", ("segment", "change")),
    TRIGGERS_PREFIX: ("fired_at", ("campaign", "offer", "holdout")),
    SUPPRESSED: ("due_at", ("campaign", "reason")),
    CONVERSIONS: ("converted_at", ("campaign", "holdout")),
}
_DATE = itemgetter(slice(0, 10))


def _day(stamp: Any) -> str | None:
    """The UTC date of an ISO-8601 output time ('2026-01-05T10:55:24.995Z' -> '2026-01-05')."""
    if isinstance(stamp, str) and len(stamp) >= 10 and stamp[4] == "-" and stamp[7] == "-":
        return stamp[:10]
    return None


def _kind(topic: str) -> str | None:
    """The key of FIELDS that records of `topic` are counted under (None: not counted)."""
    if topic.startswith(TRIGGERS_PREFIX):
        return TRIGGERS_PREFIX
    return topic if topic in FIELDS else None


class Timeline:
    """Segment sizes per day, triggers per day per campaign and offer (treated and held out
    apart), suppressions per day per reason (and per campaign), conversions per day per
    campaign and arm."""

    def __init__(self) -> None:
        self._segment_delta: Counter[tuple[str, str]] = Counter()  # (day, segment) -> net
        self._segments: set[str] = set()
        self._triggers: Counter[tuple[str, str, str, bool]] = Counter()  # day, campaign, offer
        self._suppressed: Counter[tuple[str, str, str]] = Counter()  # day, campaign, reason
        self._conversions: Counter[tuple[str, str, bool]] = Counter()  # day, campaign, holdout
        self._first: str | None = None
        self._last: str | None = None

    def add(self, topic: str, record: dict[str, Any]) -> None:
        """Count one output record of `topic` (a base topic name); others are ignored."""
        kind = _kind(topic)
        if kind is None:
            return
        stamp, fields = FIELDS[kind]
        self._count(kind, _day(record.get(stamp)), tuple(record.get(f) for f in fields), 1)

    def add_many(self, topic: str, records: Iterable[dict[str, Any]]) -> None:
        """Count output records of `topic` as `add` does, at a fraction of its cost per record
        when they are many: one counter of (date, fields) built in C, then one step per
        distinct key (a few per day) instead of per record."""
        kind = _kind(topic)
        if kind is None:
            return
        records = records if isinstance(records, list) else list(records)
        stamp, fields = FIELDS[kind]
        try:
            counts = Counter(zip(map(_DATE, map(itemgetter(stamp), records)),
                                 *(map(itemgetter(f), records) for f in fields), strict=True))
        except (KeyError, TypeError):  # a field missing or not text: one record at a time
            for record in records:
                self.add(kind, record)
            return
        for (day, *values), n in counts.items():
            self._count(kind, _day(day), tuple(values), n)

    def _count(self, kind: str, day: str | None, values: tuple[Any, ...], n: int) -> None:
        """Count `n` records of `kind` on `day` with these FIELDS values."""
        if day is None:
            return
        if kind == SEGMENT_CHANGES:
            segment, change = str(values[0]), values[1]
            if change == "entered":
                self._segment_delta[day, segment] += n
            elif change == "exited":
                self._segment_delta[day, segment] -= n
            else:
                return
            self._segments.add(segment)
        elif kind == TRIGGERS_PREFIX:
            self._triggers[day, str(values[0]), str(values[1]), bool(values[2])] += n
        elif kind == SUPPRESSED:
            self._suppressed[day, str(values[0]), str(values[1])] += n
        else:
            self._conversions[day, str(values[0]), bool(values[1])] += n
        if self._first is None or day < self._first:
            self._first = day
        if self._last is None or day > self._last:
            self._last = day

    @classmethod
    def from_dir(cls, out_dir: Path) -> Timeline:
        """The timeline of a replay's output files (those of FILES that exist)."""
        timeline = cls()
        for name, topic in FILES.items():
            path = out_dir / name
            if not path.exists():
                continue
            with open(path, "rb") as f:
                for line in f:
                    if line.strip():
                        timeline.add(topic, json.loads(line))
        return timeline

    def to_state(self) -> dict[str, Any]:
        """The counters as JSON-able lists (`from_state` reads them back), to hand a timeline
        to another process."""
        return {
            "segments": [[*k, n] for k, n in self._segment_delta.items()],
            "segment_names": sorted(self._segments),
            "triggers": [[*k, n] for k, n in self._triggers.items()],
            "suppressed": [[*k, n] for k, n in self._suppressed.items()],
            "conversions": [[*k, n] for k, n in self._conversions.items()],
            "span": [self._first, self._last],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Timeline:
        """The timeline `to_state` described."""
        timeline = cls()
        timeline._segment_delta.update({(d, s): n for d, s, n in state["segments"]})
        timeline._segments.update(state["segment_names"])
        timeline._triggers.update({(d, c, o, h): n for d, c, o, h, n in state["triggers"]})
        timeline._suppressed.update({(d, c, r): n for d, c, r, n in state["suppressed"]})
        timeline._conversions.update({(d, c, h): n for d, c, h, n in state["conversions"]})
        timeline._first, timeline._last = state["span"]
        return timeline

    def days(self) -> list[str]:
        """Every UTC date from the first output's to the last one's, gaps included."""
        if self._first is None or self._last is None:
            return []
        start, end = date.fromisoformat(self._first), date.fromisoformat(self._last)
        return [(start + timedelta(n)).isoformat() for n in range((end - start).days + 1)]

    def segment_sizes(self) -> dict[str, list[int]]:
        """Members of each segment at the end of each day of `days()` (a replay starts empty)."""
        days = self.days()
        out: dict[str, list[int]] = {}
        for segment in sorted(self._segments):
            size, series = 0, []
            for day in days:
                size += self._segment_delta.get((day, segment), 0)
                series.append(size)
            out[segment] = series
        return out

    def triggers_per_day(self, holdout: bool | None = None) -> dict[str, dict[str, list[int]]]:
        """{campaign: {offer: triggers fired on each day}}; `holdout` True/False keeps one arm,
        None counts both."""
        return _series(
            self.days(),
            (((c, o), d, n) for (d, c, o, h), n in self._triggers.items()
             if holdout is None or h == holdout),
        )

    def suppressions_per_day(self) -> dict[str, list[int]]:
        """{reason: suppressed triggers due on each day} over every campaign."""
        return _flat(_series(self.days(), (((r, ""), d, n)
                                           for (d, _, r), n in self._suppressed.items())))

    def suppressions_by_campaign(self) -> dict[str, dict[str, int]]:
        """{campaign: {reason: total}}."""
        out: dict[str, dict[str, int]] = {}
        for (_, campaign, reason), n in sorted(self._suppressed.items()):
            by_reason = out.setdefault(campaign, {})
            by_reason[reason] = by_reason.get(reason, 0) + n
        return out

    def conversions_per_day(self) -> dict[str, dict[str, list[int]]]:
        """{campaign: {"treated" | "holdout": conversions on each day}}."""
        return _series(
            self.days(),
            (((c, "holdout" if h else "treated"), d, n)
             for (d, c, h), n in self._conversions.items()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The series as JSON-able data."""
        return {
            "days": self.days(),
            "segment_sizes": self.segment_sizes(),
            "triggers_treated": self.triggers_per_day(holdout=False),
            "triggers_holdout": self.triggers_per_day(holdout=True),
            "suppressions": self.suppressions_per_day(),
            "suppressions_by_campaign": self.suppressions_by_campaign(),
            "conversions": self.conversions_per_day(),
        }


def aligned_days(timelines: Sequence[Timeline]) -> list[str]:
    """Every day from the earliest first day to the latest last day of the timelines."""
    spans = [(d[0], d[-1]) for d in (t.days() for t in timelines) if d]
    if not spans:
        return []
    start = date.fromisoformat(min(s for s, _ in spans))
    end = date.fromisoformat(max(e for _, e in spans))
    return [(start + timedelta(n)).isoformat() for n in range((end - start).days + 1)]


def align_sizes(timeline: Timeline, days: Sequence[str]) -> dict[str, list[int]]:
    """The timeline's segment sizes on `days` (0 before its first day, the last size after)."""
    own = timeline.days()
    index = {d: i for i, d in enumerate(own)}
    out: dict[str, list[int]] = {}
    for name, series in timeline.segment_sizes().items():
        values, last = [], 0
        for day in days:
            i = index.get(day)
            if i is not None:
                last = series[i]
            values.append(last if own and day >= own[0] else 0)
        out[name] = values
    return out


def _series(
    days: list[str], counts: Iterator[tuple[tuple[str, str], str, int]]
) -> dict[str, dict[str, list[int]]]:
    index = {day: i for i, day in enumerate(days)}
    out: dict[str, dict[str, list[int]]] = {}
    for (outer, inner), day, n in counts:
        series = out.setdefault(outer, {}).setdefault(inner, [0] * len(days))
        series[index[day]] += n
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def _flat(nested: dict[str, dict[str, list[int]]]) -> dict[str, list[int]]:
    return {k: v[""] for k, v in nested.items()}
