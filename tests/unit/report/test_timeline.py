"""Timeline: daily series of a replay's outputs equal direct counts of its output files."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

from streams.report.timeline import Timeline, align_sizes, aligned_days
from tests.unit.report.conftest import Replayed


def records(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def change(segment: str, what: str, at: str) -> dict:
    return {"consumer_id": "c", "segment": segment, "change": what, "at": at}


def test_segment_size_at_the_end_of_a_day_counts_entries_minus_exits_up_to_that_day() -> None:
    t = Timeline()
    t.add("segment-changes", change("vip", "entered", "2026-01-01T10:00:00Z"))
    t.add("segment-changes", change("vip", "entered", "2026-01-01T23:59:59.999Z"))
    t.add("segment-changes", change("vip", "exited", "2026-01-04T00:00:00Z"))
    assert t.days() == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert t.segment_sizes() == {"vip": [2, 2, 2, 1]}


def test_records_out_of_time_order_give_the_same_series() -> None:
    stamps = ["2026-03-02T01:00:00Z", "2026-03-01T05:00:00Z", "2026-03-03T00:00:00Z"]
    forward, backward = Timeline(), Timeline()
    for at, what in zip(stamps, ["entered", "entered", "exited"], strict=True):
        forward.add("segment-changes", change("s", what, at))
    for at, what in reversed(list(zip(stamps, ["entered", "entered", "exited"], strict=True))):
        backward.add("segment-changes", change("s", what, at))
    assert forward.segment_sizes() == backward.segment_sizes() == {"s": [1, 2, 1]}


def test_segment_sizes_per_day_equal_a_direct_count_from_segment_changes_jsonl(
    example: Replayed,
) -> None:
    changes = records(example.out / "segment_changes.jsonl")
    days = example.timeline.days()
    assert days[0] == min(c["at"][:10] for c in changes)
    sizes = example.timeline.segment_sizes()
    assert set(sizes) == {c["segment"] for c in changes}
    for segment, series in sizes.items():
        for i, day in enumerate(days):
            direct = sum(
                1 if c["change"] == "entered" else -1
                for c in changes if c["segment"] == segment and c["at"][:10] <= day
            )
            assert series[i] == direct, (segment, day)


def test_triggers_per_day_per_campaign_and_offer_equal_triggers_jsonl(example: Replayed) -> None:
    triggers = records(example.out / "triggers.jsonl")
    days = example.timeline.days()
    for holdout in (False, True):
        direct = Counter((t["campaign"], t["offer"], t["fired_at"][:10])
                         for t in triggers if t["holdout"] == holdout)
        series = example.timeline.triggers_per_day(holdout=holdout)
        counted = Counter({(c, o, days[i]): n for c, offers in series.items()
                           for o, s in offers.items() for i, n in enumerate(s) if n})
        assert counted == direct
    both = example.timeline.triggers_per_day()
    assert sum(sum(s) for offers in both.values() for s in offers.values()) == len(triggers)


def test_suppressions_by_reason_equal_suppressed_jsonl(example: Replayed) -> None:
    suppressed = records(example.out / "suppressed.jsonl")
    per_day = example.timeline.suppressions_per_day()
    assert {r: sum(s) for r, s in per_day.items()} == Counter(s["reason"] for s in suppressed)
    by_campaign = example.timeline.suppressions_by_campaign()
    assert Counter({(c, r): n for c, rs in by_campaign.items() for r, n in rs.items()}) == \
        Counter((s["campaign"], s["reason"]) for s in suppressed)


def test_a_timeline_rebuilt_from_the_output_files_equals_the_one_fed_during_replay(
    example: Replayed,
) -> None:
    assert Timeline.from_dir(example.out).to_dict() == example.timeline.to_dict()


def test_state_handed_to_another_process_gives_back_the_same_series(example: Replayed) -> None:
    state = json.loads(json.dumps(example.timeline.to_state()))
    assert Timeline.from_state(state).to_dict() == example.timeline.to_dict()


def test_conversions_are_counted_per_day_campaign_and_arm() -> None:
    t = Timeline()
    for holdout, at in ((False, "2026-02-01T10:00:00Z"), (False, "2026-02-01T11:00:00Z"),
                        (True, "2026-02-02T09:00:00Z")):
        t.add("conversions", {"campaign": "cart", "holdout": holdout, "converted_at": at})
    assert t.conversions_per_day() == {"cart": {"holdout": [0, 1], "treated": [2, 0]}}


def test_other_topics_and_records_without_a_time_are_ignored() -> None:
    t = Timeline()
    t.add("profiles", {"consumer_id": "c", "at": "2026-01-01T00:00:00Z"})
    t.add("dead-letters", {"at": "2026-01-01T00:00:00Z"})
    t.add("segment-changes", change("s", "entered", "yesterday"))
    t.add("triggers.winback", {"campaign": "w", "offer": "o"})
    assert t.days() == [] and t.to_dict()["segment_sizes"] == {}


def test_a_year_of_history_keeps_one_counter_per_day_and_segment_not_the_records() -> None:
    t = Timeline()
    start = date(2026, 1, 1)
    for n in range(365):
        for i in range(50):  # 50 entries and exits a day
            at = f"{(start + timedelta(n)).isoformat()}T12:00:00Z"
            t.add("segment-changes", change("s", "entered" if i % 2 else "exited", at))
    assert len(t.to_state()["segments"]) == 365
    assert t.segment_sizes()["s"] == [0] * 365


def test_two_timelines_are_aligned_on_the_days_of_both() -> None:
    early, late = Timeline(), Timeline()
    early.add("segment-changes", change("s", "entered", "2026-01-01T00:00:00Z"))
    early.add("segment-changes", change("s", "entered", "2026-01-02T00:00:00Z"))
    late.add("segment-changes", change("s", "entered", "2026-01-03T00:00:00Z"))
    days = aligned_days([early, late])
    assert days == ["2026-01-01", "2026-01-02", "2026-01-03"]
    # empty before a timeline's first day, its last size after its last day
    assert align_sizes(early, days) == {"s": [1, 2, 2]}
    assert align_sizes(late, days) == {"s": [0, 0, 1]}
    assert aligned_days([Timeline()]) == []


def test_the_last_day_of_each_segment_is_its_size_in_report_json(example: Replayed) -> None:
    sizes = example.timeline.segment_sizes()
    assert example.report["segment_sizes"]  # every segment of the rules, 0 if never entered
    for segment, size in example.report["segment_sizes"].items():
        assert (sizes[segment][-1] if segment in sizes else 0) == size, segment
