"""report.json's `campaigns` on the example file equal a direct count from triggers.jsonl and
the input events; report.json's other counts agree with the output files."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.engine.events import parse_time
from streams.engine.rules import load_rules, loads_rules
from streams.replay import OutputFiles, read_lines, replay
from streams.runtime import Runtime
from tests.conftest import EXAMPLES

CLOSE_AT = "2027-02-01T00:00:00Z"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bike-shop")
    runtime = Runtime(load_rules(EXAMPLES / "rules.yaml"), 4)
    with OutputFiles(out) as files:
        lines = (("events.jsonl", str(no), line)
                 for no, line in read_lines(str(EXAMPLES / "events.jsonl")))
        report = replay(lines, runtime, files, parse_time(CLOSE_AT))
    return out, report


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def direct_count(out: Path) -> dict[str, dict[str, Any]]:
    """Per campaign, from triggers.jsonl and the input file alone: triggers of each arm whose
    window closed by --close-at, those followed by an order of the same person (anonymous ids
    resolved through identify events) after firing and up to attribution_until, and revenue."""
    dead = {d["offset"] for d in jsonl(out / "dead_letters.jsonl")}
    user_of: dict[str, str] = {}
    orders: dict[str, list[tuple[float, float]]] = {}
    seen_messages: set[str] = set()
    seen_orders: set[tuple[str, str]] = set()
    for no, line in read_lines(str(EXAMPLES / "events.jsonl")):
        if str(no) in dead:
            continue
        ev = orjson.loads(line)
        if ev["messageId"] in seen_messages:
            continue
        seen_messages.add(ev["messageId"])
        anon, user = ev.get("anonymousId"), ev.get("userId")
        if ev["type"] == "identify" and anon and user:
            user_of.setdefault(anon, user)
        if ev["type"] == "track" and ev.get("event") == "Order Completed":
            who = user or user_of.get(anon, anon)
            key = (who, str(ev["properties"]["order_id"]))
            if key not in seen_orders:
                seen_orders.add(key)
                orders.setdefault(who, []).append(
                    (parse_time(ev["timestamp"]), float(ev["properties"]["revenue"])))
    end = parse_time(CLOSE_AT)
    counts: dict[str, Counter[str]] = {}
    revenue: dict[str, list[float]] = {}
    for trig in jsonl(out / "triggers.jsonl"):
        fired, until = parse_time(trig["fired_at"]), parse_time(trig["attribution_until"])
        if until > end:
            continue
        who = user_of.get(trig["consumer_id"], trig["consumer_id"])
        arm = "holdout" if trig["holdout"] else "treated"
        c = counts.setdefault(trig["campaign"], Counter())
        c[arm] += 1
        bought = [r for t, r in orders.get(who, []) if fired < t <= until]
        if bought:
            c["converted_" + arm] += 1
            revenue.setdefault(trig["campaign"] + "/" + arm, []).extend(bought)
    return {
        campaign: {
            **{k: c[k] for k in ("treated", "holdout", "converted_treated", "converted_holdout")},
            "revenue_treated": math.fsum(revenue.get(campaign + "/treated", [])),
            "revenue_holdout": math.fsum(revenue.get(campaign + "/holdout", [])),
        }
        for campaign, c in counts.items()
    }


def test_campaign_figures_equal_a_direct_count_of_triggers_and_orders(replayed):
    out, report = replayed
    expected = direct_count(out)
    assert sum(c["converted_treated"] + c["converted_holdout"] for c in expected.values()) > 20
    got = report["campaigns"]
    assert sorted(got) == sorted(expected)
    for campaign, want in expected.items():
        figures = got[campaign]
        for key in ("treated", "holdout", "converted_treated", "converted_holdout"):
            assert figures[key] == want[key], (campaign, key)
        for arm in ("treated", "holdout"):
            n = want[arm]
            if n:
                assert figures["revenue_per_trigger_" + arm] == pytest.approx(
                    want["revenue_" + arm] / n)
        if want["treated"] and want["holdout"]:
            rates = (want["converted_treated"] / want["treated"],
                     want["converted_holdout"] / want["holdout"])
            assert figures["lift"] == pytest.approx(rates[0] - rates[1])
            low, high = figures["lift_ci95"]
            assert low <= figures["lift"] <= high


def test_report_counts_agree_with_the_output_files(replayed):
    out, report = replayed
    triggers = jsonl(out / "triggers.jsonl")
    assert sum(report["triggers"].values()) == sum(not t["holdout"] for t in triggers)
    assert sum(report["holdout"].values()) == sum(t["holdout"] for t in triggers)
    assert report["conversions"] == len(jsonl(out / "conversions.jsonl")) > 0
    rules = load_rules(EXAMPLES / "rules.yaml")
    names = set(rules.segment_names())
    assert set(report["segments_entered"]) == set(report["segment_sizes"]) == names
    assert set(report["triggers"]) == set(report["holdout"]) == {t.name for t in rules.triggers}
    sizes: Counter[str] = Counter()
    for change in jsonl(out / "segment_changes.jsonl"):
        sizes[change["segment"]] += 1 if change["change"] == "entered" else -1
    assert report["segment_sizes"] == {name: sizes[name] for name in names}


def test_segments_and_campaigns_that_never_happened_are_listed_with_zero(tmp_path):
    text = """
segments:
  - name: nobody
    when: orders > 1000
triggers:
  - name: never
    kind: winback
    on: Order Refunded
    wait: 1d
    offer: x
"""
    runtime = Runtime(loads_rules(text, "r.yaml"), 2)
    with OutputFiles(tmp_path) as files:
        report = replay([("f", "1", b'{"type":"page","userId":"u","messageId":"m",'
                         b'"timestamp":"2026-01-01T00:00:00Z"}')], runtime, files)
    assert report["segments_entered"] == report["segments_exited"] == {"nobody": 0}
    assert report["segment_sizes"] == {"nobody": 0}
    assert report["triggers"] == report["holdout"] == {"never": 0}
    assert report["conversions"] == 0 and report["campaigns"] == {}


def test_every_key_of_report_json_and_of_the_campaign_figures_is_explained_in_the_readme(
    replayed,
):
    _, report = replayed
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    keys_table = readme.split("### report.json", 1)[1].split("## Campaign results", 1)[0]
    figures_table = readme.split("## Campaign results", 1)[1].split("### Global control", 1)[0]
    documented = set(re.findall(r"`([a-z_0-9]+)`", keys_table))
    assert set(report) <= documented, set(report) - documented
    assert set(report["timing"]) <= documented
    figures = set(re.findall(r"`([a-z_0-9]+)`", figures_table))
    for campaign in report["campaigns"].values():
        assert set(campaign) - {"offers"} <= figures, set(campaign) - figures
