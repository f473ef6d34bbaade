"""The dry run's comparison: two rule sets over the same records, side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from micromarketing.console.dryrun import compare
from streams.contract import event_time
from streams.engine.rules import RuleSet, loads_rules
from tests.conftest import EXAMPLES

RULES = (EXAMPLES / "rules.yaml").read_text()
WIDER = RULES.replace(
    'affinity("mountain") >= 0.5 and price_band < 500',
    'affinity("mountain") >= 0.5 and price_band < 5000',
)


def records() -> Iterator[tuple[str, str, bytes]]:
    lines = (EXAMPLES / "events.jsonl").read_bytes().splitlines()
    for n, line in enumerate(lines, 1):
        yield "events.jsonl", str(n), line


def end() -> float:
    import orjson

    times = [
        t for line in (EXAMPLES / "events.jsonl").read_bytes().splitlines()
        if (t := event_time(orjson.loads(line))) is not None
    ]
    return max(times)


@pytest.fixture(scope="module")
def current() -> RuleSet:
    return loads_rules(RULES, "rules.yaml")


def test_the_same_rules_show_no_difference(current: RuleSet) -> None:
    out = compare(records(), current, loads_rules(RULES, "rules.yaml"), end())
    assert out["changed"] is False
    assert out["records"] > 4000
    assert all(r["delta"] == 0 for r in out["segments"])
    assert out["consumers"]["only_current"] == out["consumers"]["only_proposed"] == 0
    assert sum(r["current"] for r in out["campaigns"]) > 0


def test_a_wider_segment_has_more_members_and_the_outputs_differ(current: RuleSet) -> None:
    proposed = loads_rules(WIDER, "rules.yaml")
    out = compare(records(), current, proposed, end())
    assert out["changed"] is True
    row = next(r for r in out["segments"] if r["name"] == "mountain-beginner")
    assert row["proposed"] > row["current"]
    assert out["current_version"] == current.version != out["proposed_version"]


def test_a_segment_only_one_side_has_is_listed_with_zero_on_the_other(current: RuleSet) -> None:
    extra = RULES.replace(
        "segments:", "segments:\n  - name: everyone\n    when: views >= 0\n", 1
    )
    out = compare(records(), current, loads_rules(extra, "rules.yaml"), end())
    row = next(r for r in out["segments"] if r["name"] == "everyone")
    assert row["current"] == 0 and row["proposed"] == row["delta"] > 0


def test_more_records_than_the_limit_are_cut_and_the_answer_says_so(current: RuleSet) -> None:
    out: dict[str, Any] = compare(records(), current, current, end(), max_records=100)
    assert out["records"] == 100 and out["truncated"] is True
