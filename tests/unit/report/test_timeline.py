"""Timeline: daily series of a replay's outputs equal direct counts of its output files."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

from streams.report.timeline import FILES, Timeline, align_sizes, aligned_days
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


def output_records(out) -> list[tuple[str, dict]]:
    """(topic, record) of every record a replay wrote that a timeline counts."""
    return [(topic, record) for name, topic in FILES.items()
            for record in records(out / name)]


def counters(t: Timeline) -> dict:
    """A timeline's counters, whatever order they were first counted in."""
    state = t.to_state()
    for key in ("segments", "triggers", "suppressed", "conversions"):
        state[key] = sorted(map(tuple, state[key]))
    return state


def test_records_counted_in_batches_give_the_same_series_as_one_at_a_time(
    example: Replayed,
) -> None:
    once = output_records(example.out)
    pairs = once * 3
    one, batched = Timeline(), Timeline()
    for topic, record in pairs:
        one.add(topic, record)
    for i in range(0, len(pairs), 500):
        chunk = pairs[i:i + 500]
        for topic in {t for t, _ in chunk}:
            batched.add_many(topic, [r for t, r in chunk if t == topic])
    assert counters(batched) == counters(one)
    assert batched.to_dict() == one.to_dict()
    # the replay fed its timeline in batches (streams.replay.OutputFiles): the same as one
    # record at a time
    single = Timeline()
    for topic, record in once:
        single.add(topic, record)
    assert counters(example.timeline) == counters(single)


def test_a_batch_with_odd_records_counts_each_as_add_would() -> None:
    odd: list[dict] = [
        change("s", "entered", "2026-01-01T10:00:00Z"),
        change("s", "moved", "2026-01-01T10:00:00Z"),  # neither entered nor exited
        change("s", "entered", "2026-01"),  # not a time
        {"segment": "s", "change": "entered", "at": 20260101},  # not text
        {"segment": "s", "change": "entered"},  # no time
        {"segment": ["s"], "change": "exited", "at": "2026-01-02T00:00:00Z"},  # unhashable
        {"segment": "t", "change": "exited", "at": b"2026-01-03T00:00:00Z"},  # bytes
    ]
    triggers: list[dict] = [
        {"campaign": "c", "offer": "o", "fired_at": "2026-01-02T00:00:00Z"},  # no holdout
        {"campaign": "c", "offer": "o", "holdout": 0, "fired_at": "2026-01-02T01:00:00Z"},
    ]
    one, batched = Timeline(), Timeline()
    for record in odd:
        one.add("segment-changes", record)
    for record in triggers:
        one.add("triggers.winback", record)
    batched.add_many("segment-changes", odd)
    batched.add_many("triggers.winback", triggers)
    batched.add_many("dead-letters", [{"at": "2026-01-05T00:00:00Z"}])  # not counted
    assert counters(batched) == counters(one)
    assert batched.segment_sizes() == {"['s']": [0, -1], "s": [1, 1]}
    assert batched.triggers_per_day(holdout=False) == {"c": {"o": [0, 2]}}
