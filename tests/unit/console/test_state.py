"""The console's aggregates of the output topics: sizes, history, rates, feed, rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from micromarketing.console.state import FEED_SIZE, ConsoleState, Rates, Timeline
from streams.engine.events import iso
from streams.engine.rules.loader import version_of

T0 = 1_767_225_600.0  # 2026-01-01


def change(consumer: str, segment: str, what: str, t: float) -> dict[str, Any]:
    return {"consumer_id": consumer, "segment": segment, "change": what, "at": iso(t),
            "rules_version": "v1"}


def trigger(n: int, t: float, holdout: bool = False, campaign: str = "cart") -> dict[str, Any]:
    return {"trigger_id": f"t{n}", "campaign": campaign, "kind": "retargeting", "offer": "o",
            "consumer_id": f"c{n}", "fired_at": iso(t), "holdout": holdout,
            "rules_version": "v1"}


def test_segment_size_is_entries_minus_exits_and_history_is_its_running_total() -> None:
    state = ConsoleState()
    state.apply("segment-changes", change("a", "vip", "entered", T0), T0)
    state.apply("segment-changes", change("b", "vip", "entered", T0 + 30), T0)
    state.apply("segment-changes", change("a", "vip", "exited", T0 + 60), T0)
    view = state.overview(T0)
    assert view["segments"] == {"vip": 1}
    history = view["segment_history"]
    assert history["series"]["vip"][-1] == 1
    assert max(history["series"]["vip"]) == 2


def test_out_of_order_changes_give_the_same_history() -> None:
    a, b = ConsoleState(), ConsoleState()
    records = [change("x", "s", "entered", T0 + i * 15) for i in range(6)]
    for r in records:
        a.apply("segment-changes", r, T0)
    for r in reversed(records):
        b.apply("segment-changes", r, T0)
    assert a.overview(T0)["segment_history"] == b.overview(T0)["segment_history"]


def test_a_timeline_keeps_at_most_its_buckets_by_doubling_their_width() -> None:
    line = Timeline(width=10.0, max_buckets=8)
    for i in range(100):
        line.add("n", T0 + i * 10.0)
    out = line.to_json()
    assert len(out["series"]["n"]) <= 8
    assert out["width"] >= 10.0 * 100 / 8
    assert sum(out["series"]["n"]) == 100


def test_the_feed_keeps_the_latest_triggers_newest_first() -> None:
    state = ConsoleState()
    for n in range(FEED_SIZE + 10):
        state.apply("triggers.retargeting", trigger(n, T0 + n), T0)
    feed = state.overview(T0)["feed"]
    assert len(feed) == FEED_SIZE
    assert feed[0]["trigger_id"] == f"t{FEED_SIZE + 9}"


def test_holdout_triggers_are_counted_apart_from_the_sent_ones() -> None:
    state = ConsoleState()
    state.apply("triggers.retargeting", trigger(1, T0), T0)
    state.apply("triggers.retargeting", trigger(2, T0, holdout=True), T0)
    state.apply("triggers.winback", trigger(3, T0, campaign="winback"), T0)
    view = state.overview(T0)
    assert view["triggers"] == {"cart": 1, "winback": 1}
    assert view["triggers_holdout"] == {"cart": 1}


def test_rates_count_only_the_last_minute_of_wall_clock() -> None:
    state = ConsoleState()
    state.apply("suppressed", {"reason": "cooldown", "due_at": iso(T0)}, 1000.0)
    state.apply("suppressed", {"reason": "consent", "due_at": iso(T0)}, 1050.0)
    assert state.overview(1055.0)["rates_per_minute"] == {"suppressed": 2.0}
    assert state.overview(1100.0)["rates_per_minute"] == {"suppressed": 1.0}
    assert state.overview(1100.0)["suppressions"] == {"consent": 1, "cooldown": 1}


def test_rates_keep_one_entry_per_second_however_many_records() -> None:
    rates = Rates()
    for i in range(10_000):
        rates.add("triggers", 2000.0 + i / 1000)  # ten seconds, a thousand a second
    assert len(rates.seconds) == 10
    assert rates.per_minute(2010.0) == {"triggers": 10_000.0}
    rates.add("triggers", 3000.0)
    assert len(rates.seconds) == 1


def test_rules_published_on_the_control_topic_are_the_rules_in_force() -> None:
    state = ConsoleState()
    text = "segments: []\n"
    state.apply("control", {"type": "rules", "yaml": text}, T0)
    state.apply("control", {"type": "other"}, T0)
    assert state.control_rules is not None
    assert state.control_rules["version"] == version_of(text)
    assert state.publishes == 1


def test_versions_seen_in_the_outputs_are_listed() -> None:
    state = ConsoleState()
    state.apply("segment-changes", change("a", "s", "entered", T0), T0)
    assert list(state.overview(T0)["versions_seen"]) == ["v1"]


class Recorder:
    """Stands in for streams.measure.results.CampaignResults (another helper's module)."""

    def __init__(self) -> None:
        self.triggers: list[Mapping[str, Any]] = []
        self.conversions: list[Mapping[str, Any]] = []
        self.until: Any = None

    def add_trigger(self, record: Mapping[str, Any]) -> None:
        self.triggers.append(record)

    def add_conversion(self, record: Mapping[str, Any]) -> None:
        self.conversions.append(record)

    def report(self, until: Any = None) -> dict[str, Any]:
        self.until = until
        return {"cart": {"treated": len(self.triggers)}}


def test_campaign_results_get_every_trigger_and_conversion() -> None:
    results = Recorder()
    state = ConsoleState(results)
    state.apply("triggers.retargeting", trigger(1, T0), T0)
    state.apply("triggers.retargeting", trigger(2, T0, holdout=True), T0)
    state.apply("conversions", {"trigger_id": "t1", "revenue": 12.5,
                                "converted_at": iso(T0 + 5)}, T0)
    body = state.campaigns()
    assert body["available"] is True and body["closed"] is False
    assert body["campaigns"] == {"cart": {"treated": 2}}
    assert results.until is None  # every trigger, as the worker's /v1/campaigns
    assert state.overview(T0)["revenue"] == 12.5


def test_closed_windows_are_those_closed_by_the_latest_event_time_read() -> None:
    results = Recorder()
    state = ConsoleState(results)
    state.apply("triggers.retargeting", trigger(1, T0), 5.0)  # wall clock: far in the past
    state.apply("segment-changes", change("a", "s", "entered", T0 + 60), 5.0)
    body = state.campaigns(closed=True)
    assert results.until.timestamp() == T0 + 60
    assert body["until"] == iso(T0 + 60) and body["closed"] is True


def test_without_the_results_module_campaigns_say_unavailable() -> None:
    body = ConsoleState(None).campaigns()
    assert body == {"available": False, "closed": False, "until": None, "campaigns": {}}
