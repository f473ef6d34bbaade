"""`fit` end to end: the example shop's events -> models.yaml -> a replay whose segments read
clv_365d and p_alive exactly as direct calls of the models compute them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from streams.engine.bgnbd import DAY, model_inputs
from streams.engine.events import parse_time
from streams.engine.rules.modelsfile import load_models
from streams.fit.history import read_history
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e
EVENTS = EXAMPLES / "events.jsonl"


def mm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def midpoint(values: list[float]) -> float:
    ordered = sorted(set(values))
    i = len(ordered) // 2
    return (ordered[i - 1] + ordered[i]) / 2


def final_members(path: Path) -> set[tuple[str, str]]:
    members: set[tuple[str, str]] = set()
    for line in path.read_text().splitlines():
        change = json.loads(line)
        key = (change["consumer_id"], change["segment"])
        (members.add if change["change"] == "entered" else members.discard)(key)
    return members


CLOSE_AT = "2027-03-01T00:00:00Z"  # after the last event


def test_fit_then_replay_reads_the_fitted_models(tmp_path):
    models_file = tmp_path / "models.yaml"
    res = mm("fit", str(EVENTS), "--calibration-end", "2026-09-30", "--out", str(models_file))
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(models_file.read_text())["bgnbd"]["customers"] > 10

    # direct calls of the fitted models on each buyer's history at the close of the replay
    # (which re-evaluates every consumer's time-driven segments then)
    models = load_models(models_file)
    close = parse_time(CLOSE_AT)
    clv: dict[str, float] = {}
    alive: dict[str, float] = {}
    for cid, days in read_history(EVENTS.read_bytes().splitlines()).days().items():
        ordered = sorted(days)
        x, t_x, T = model_inputs(len(ordered), ordered[0] * DAY, ordered[-1] * DAY, close)
        mean = sum(days[d] for d in ordered[1:]) / x if x else 0.0
        clv[cid] = models.clv(x, t_x, T, mean)
        alive[cid] = models.p_alive(x, t_x, T)
    assert len(clv) > 20
    clv_cut, alive_cut = midpoint(list(clv.values())), midpoint(list(alive.values()))

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "settings:\n  models: models.yaml\n  max_clock_skew: 400d  # a sparse history\n"
        "segments:\n"
        f"  - {{name: valuable, when: 'orders >= 1 and clv_365d >= {clv_cut!r}'}}\n"
        f"  - {{name: fading, when: 'orders >= 1 and p_alive < {alive_cut!r}'}}\n"
    )
    res = mm("replay", str(EVENTS), "--rules", str(rules), "--out", str(tmp_path / "out"),
             "--close-at", CLOSE_AT)
    assert res.returncode == 0, res.stderr
    members = final_members(tmp_path / "out" / "segment_changes.jsonl")
    assert {c for c, s in members if s == "valuable"} == {c for c, v in clv.items() if v >= clv_cut}
    assert {c for c, s in members if s == "fading"} == {
        c for c, v in alive.items() if v < alive_cut
    }


def test_a_rules_file_with_a_bad_models_file_is_refused_with_its_line(tmp_path):
    (tmp_path / "models.yaml").write_bytes(orjson.dumps({"bgnbd": {"r": 1, "alpha": 2, "a": 1}}))
    rules = tmp_path / "rules.yaml"
    rules.write_text("settings:\n  models: models.yaml\nsegments: []\n")
    res = mm("rules", "check", str(rules))
    assert res.returncode != 0
    assert f"{rules}:2:11: bgnbd.b must be a number, got None" in res.stdout + res.stderr
