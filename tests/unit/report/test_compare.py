"""compare() over two replays' output directories, built by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.report.compare import compare
from streams.report.compare_page import write_page
from streams.report.timeline import Timeline
from tests.unit.report.helpers import arm_figures


def side(out: Path, triggers: list[tuple[str, str, bool]], report: dict[str, Any]) -> Path:
    out.mkdir()
    (out / "report.json").write_text(json.dumps(report))
    (out / "triggers.jsonl").write_text("".join(
        json.dumps({"campaign": c, "consumer_id": who, "holdout": held, "offer": "o",
                    "fired_at": "2026-01-02T00:00:00Z"}) + "\n"
        for c, who, held in triggers))
    (out / "segment_changes.jsonl").write_text(json.dumps(
        {"segment": "vip", "change": "entered", "at": "2026-01-01T00:00:00Z"}) + "\n")
    return out


def test_targeted_counts_only_sent_triggers_and_rates_come_from_each_sides_campaigns(
    tmp_path: Path,
) -> None:
    a = side(tmp_path / "a", [("cart", "u1", False), ("cart", "u2", False), ("cart", "u3", True)],
             {"triggers": {"cart": 2}, "holdout": {"cart": 1}, "segments_entered": {"vip": 1},
              "campaigns": {"cart": arm_figures(20, 10, 5, 3)}})
    b = side(tmp_path / "b", [("cart", "u2", False), ("cart", "u3", False), ("win", "u1", True)],
             {"triggers": {"cart": 2}, "holdout": {"win": 1}, "segments_entered": {"vip": 1}})
    result = compare(a, b, ("A: a.yaml", "B: b.yaml"))
    t = result["targeted"]
    # u3 is held out under A: not targeted there; u1 is only held out under B
    assert (t["a_only_ids"], t["b_only_ids"], t["both"]) == (["u1"], ["u3"], 1)
    assert result["triggers"]["win"] == {"treated_a": 0, "treated_b": 0, "holdout_a": 0,
                                         "holdout_b": 1}
    assert result["campaigns"]["cart"]["a"]["conversion_rate_holdout"] == 0.3
    assert result["campaigns"]["cart"]["b"] is None
    assert result["segments"]["vip"]["final_size_a"] == 1
    page = write_page(tmp_path, result, Timeline.from_dir(a), Timeline.from_dir(b), 1000)
    html = page.read_text()
    assert '<figure id="plot-compare-anyway"><svg' in html and "30.0%" in html


def test_without_campaign_results_on_either_side_there_is_no_rate_to_compare(
    tmp_path: Path,
) -> None:
    a = side(tmp_path / "a", [], {"triggers": {}})
    b = side(tmp_path / "b", [], {"triggers": {}})
    result = compare(a, b, ("A", "B"))
    assert result["campaigns"] is None and result["targeted"]["a"] == 0
    html = write_page(tmp_path, result, Timeline.from_dir(a), Timeline.from_dir(b), 10).read_text()
    assert "Neither report has campaign results" in html
    assert "No trigger fired under either rule set" in html
