"""The README's replay and rules-check commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e

OUTPUTS = ("triggers.jsonl", "segment_changes.jsonl", "suppressed.jsonl", "dead_letters.jsonl")


def mm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def replay(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return mm("replay", str(EXAMPLES / "events.jsonl"), "--rules",
              str(EXAMPLES / "rules.yaml"), "--out", str(out), *extra)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_replay_bike_shop_writes_outputs_and_report(tmp_path):
    res = replay(tmp_path / "out", "--close-at", "2027-02-01T00:00:00Z")  # after the last event
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    for name in (*OUTPUTS, "report.json"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    triggers = lines(out / "triggers.jsonl")
    assert report["events"] + report["dead_letters"] == report["input_lines"]
    assert report["dead_letters"] == len(lines(out / "dead_letters.jsonl")) > 0
    assert report["duplicates"] > 0
    assert sum(report["triggers"].values()) + sum(report["holdout"].values()) == len(triggers)
    assert {t["kind"] for t in triggers} == {"retargeting", "winback"}
    assert {t["campaign"] for t in triggers} >= {"cart-abandonment", "winback-60d"}
    assert len({t["trigger_id"] for t in triggers}) == len(triggers)
    assert any(t["holdout"] for t in triggers) and not all(t["holdout"] for t in triggers)
    changes = lines(out / "segment_changes.jsonl")
    assert {c["segment"] for c in changes} >= {"champions", "mountain-beginner"}
    assert {s["reason"] for s in lines(out / "suppressed.jsonl")} <= {
        "consent", "frequency_cap", "cooldown"}
    assert "events/s" in res.stderr


def test_replay_is_deterministic(tmp_path):
    assert replay(tmp_path / "a").returncode == 0
    assert replay(tmp_path / "b").returncode == 0
    for name in OUTPUTS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ra = json.loads((tmp_path / "a" / "report.json").read_text())
    rb = json.loads((tmp_path / "b" / "report.json").read_text())
    ra.pop("timing"), rb.pop("timing")
    assert ra == rb


def test_replay_refuses_a_bad_rules_file_with_the_line(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - name: x\n    when: orderz >= 2\n")
    res = mm("replay", str(EXAMPLES / "events.jsonl"), "--rules", str(bad), "--out",
             str(tmp_path / "o"))
    assert res.returncode == 1
    assert "rules.yaml:3:" in res.stderr and "orderz" in res.stderr


def test_rules_check(tmp_path):
    ok = mm("rules", "check", str(EXAMPLES / "rules.yaml"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok"), ok.stdout + ok.stderr
    bad = tmp_path / "r.yaml"
    bad.write_text(
        "segments:\n  - name: a\n    when: in_segment('nope')\n"
        "triggers:\n  - name: t\n    kind: retargeting\n    on: Product Added\n"
        "    wait: 30x\n    offer: o\n"
    )
    res = mm("rules", "check", str(bad))
    assert res.returncode == 1
    assert "r.yaml:3:" in res.stdout and "nope" in res.stdout
    assert "r.yaml:8:" in res.stdout


def test_replay_from_stdin(tmp_path):
    data = (EXAMPLES / "events.jsonl").read_bytes()[:200_000]
    data = data[: data.rfind(b"\n") + 1]
    res = subprocess.run(
        [sys.executable, "-m", "micromarketing", "replay", "-", "--rules",
         str(EXAMPLES / "rules.yaml"), "--out", str(tmp_path / "o")],
        input=data, capture_output=True, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["input_lines"] == data.count(b"\n")
