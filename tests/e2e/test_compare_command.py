"""`micromarketing compare A.yaml B.yaml EVENTS.jsonl --out DIR` on the bike-shop example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.e2e.test_report_page import check_page

pytestmark = pytest.mark.e2e


def mm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def rules_b(tmp: Path) -> Path:
    """The example's rules with a later cart reminder, a 45-day win-back instead of the
    60-day one, and a wider road-amateur budget band."""
    text = (EXAMPLES / "rules.yaml").read_text()
    for old, new in (("wait: 30m", "wait: 2h"), ("name: winback-60d", "name: winback-45d"),
                     ("wait: 60d", "wait: 45d"),
                     ('affinity("road") >= 0.5 and 500 <= price_band < 2000',
                      'affinity("road") >= 0.5 and 300 <= price_band < 2500')):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp / "rules-b.yaml"
    path.write_text(text)
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("compare")
    res = mm("compare", str(EXAMPLES / "rules.yaml"), str(rules_b(tmp)),
             str(EXAMPLES / "events.jsonl"), "--out", str(tmp / "out"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "compared A: rules.yaml and B: rules-b.yaml" in res.stderr
    return tmp / "out"


def targeted(out: Path) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for t in lines(out / "triggers.jsonl"):
        if not t["holdout"]:
            result.setdefault(t["campaign"], set()).add(t["consumer_id"])
    return result


def test_each_rule_set_gets_a_full_replay_and_one_side_by_side_report(compared: Path) -> None:
    for name in ("a/report.json", "a/report.html", "a/triggers.jsonl", "b/report.json",
                 "b/report.html", "compare.json", "compare.html"):
        assert (compared / name).exists(), name


def test_consumers_targeted_by_one_and_not_the_other_equal_the_two_triggers_files(
    compared: Path,
) -> None:
    result = json.loads((compared / "compare.json").read_text())
    a, b = targeted(compared / "a"), targeted(compared / "b")
    all_a, all_b = set().union(*a.values()), set().union(*b.values())
    t = result["targeted"]
    assert (t["a"], t["b"], t["both"]) == (len(all_a), len(all_b), len(all_a & all_b))
    assert t["a_only_ids"] == sorted(all_a - all_b) and t["b_only_ids"] == sorted(all_b - all_a)
    assert t["a_only"] + t["b_only"] > 0  # the two rule sets do differ
    assert t["by_campaign"]["winback-60d"]["b"] == 0 and t["by_campaign"]["winback-45d"]["a"] == 0
    for campaign, row in t["by_campaign"].items():
        ca, cb = a.get(campaign, set()), b.get(campaign, set())
        assert (row["a_only"], row["b_only"], row["both"]) == (
            len(ca - cb), len(cb - ca), len(ca & cb)), campaign


def test_segments_and_triggers_equal_each_sides_report_and_outputs(compared: Path) -> None:
    result = json.loads((compared / "compare.json").read_text())
    for side in ("a", "b"):
        report = json.loads((compared / side / "report.json").read_text())
        for campaign, n in report["triggers"].items():
            assert result["triggers"][campaign][f"treated_{side}"] == n
        changes = lines(compared / side / "segment_changes.jsonl")
        for segment, row in result["segments"].items():
            direct = sum(1 if c["change"] == "entered" else -1
                         for c in changes if c["segment"] == segment)
            assert row[f"final_size_{side}"] == direct, (side, segment)
            assert row[f"entered_{side}"] == report["segments_entered"].get(segment, 0)
    sizes = result["segments"]["road-amateur"]
    assert sizes["entered_a"] != sizes["entered_b"]


def test_compare_html_opens_offline_with_every_plot(compared: Path) -> None:
    result = json.loads((compared / "compare.json").read_text())
    plots = ["plot-compare-segments", "plot-compare-triggers"]
    if result["campaigns"]:
        plots.append("plot-compare-anyway")
    _, text = check_page(compared / "compare.html", tuple(plots), "compare.png")
    assert "Consumers targeted by one and not the other" in text
    if result["campaigns"] is None:
        assert "Neither report has campaign results" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compare", "A.yaml", "B.yaml", "nowhere.jsonl", "--out", "x"),
         "micromarketing compare: no such file: nowhere.jsonl"),
        (("compare", "A.yaml", "B.yaml", "-", "--out", "x"),
         "micromarketing compare: EVENTS must be a file (it is read twice), not stdin"),
    ],
)
def test_bad_arguments_are_one_line_reasons(args: tuple[str, ...], message: str) -> None:
    res = mm(*args)
    assert res.returncode == 2
    assert res.stderr.strip() == message


def test_a_bad_rules_file_points_at_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments:\n  - name: x\n    when: nosuch_feature > 1\n")
    res = mm("compare", str(EXAMPLES / "rules.yaml"), str(bad), str(EXAMPLES / "events.jsonl"),
             "--out", str(tmp_path / "out"))
    assert res.returncode == 1  # as replay's exit code for a rules file with an error
    assert len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"micromarketing compare: {bad}:3:")
    res = mm("compare", str(EXAMPLES / "rules.yaml"), str(tmp_path / "missing.yaml"),
             str(EXAMPLES / "events.jsonl"), "--out", str(tmp_path / "out"),)
    assert res.returncode == 2
    assert res.stderr.startswith("micromarketing compare: cannot read rules")
    assert not (tmp_path / "out").exists()


def test_a_bad_close_at_is_refused_before_anything_runs(tmp_path: Path) -> None:
    res = mm("compare", str(EXAMPLES / "rules.yaml"), str(EXAMPLES / "rules.yaml"),
             str(EXAMPLES / "events.jsonl"), "--out", str(tmp_path / "o"), "--close-at", "soon")
    assert res.returncode == 2 and res.stderr.startswith("micromarketing compare: ")
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_every_option_has_help_text() -> None:
    res = mm("compare", "--help")
    assert res.returncode == 0
    for option, words in (("A.yaml", "first rules file"), ("B.yaml", "second rules file"),
                          ("EVENTS.jsonl", "events as JSON lines"), ("--out", "output directory"),
                          ("--partitions", "engine partitions"), ("--close-at", "advance event"),
                          ("--no-progress", "no progress"), ("--no-html", "report.html")):
        assert option in res.stdout and words in res.stdout, option
