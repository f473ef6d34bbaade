"""The compiled engine (mypyc, `make compile`) gives the same outputs as its Python source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from connectors.sources.synthetic import generate_events
from streams import compiled
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e
EXPECTED = "compiled" if os.environ.get("MICROMARKETING_EXPECT_COMPILED") == "1" else None
OUTPUTS = ("triggers.jsonl", "segment_changes.jsonl", "suppressed.jsonl", "dead_letters.jsonl",
           "profiles.jsonl", "conversions.jsonl")


def _replay(events: Path, out: Path, pure: bool) -> dict:
    env = {**os.environ, compiled.PURE_ENV: "1" if pure else ""}
    res = subprocess.run(
        [sys.executable, "-m", "micromarketing", "replay", str(events), "--rules",
         str(EXAMPLES / "rules.yaml"), "--out", str(out), "--no-progress",
         "--close-at", "2030-01-01T00:00:00Z"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "changed after the engine was compiled" not in res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report.pop("timing")["engine"] == ("source" if pure else "compiled")
    return report


def test_the_installed_command_runs_from_any_directory(tmp_path):
    """The console script of the editable install has neither the tree nor the current
    directory on sys.path, yet the compiled modules must find mypyc's library."""
    script = Path(sys.executable).with_name("micromarketing")
    res = subprocess.run(
        [str(script), "replay", str(EXAMPLES / "events.jsonl"), "--rules",
         str(EXAMPLES / "rules.yaml"), "--out", "out", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert res.returncode == 0, res.stderr
    engine = json.loads((tmp_path / "out" / "report.json").read_text())["timing"]["engine"]
    assert engine == (EXPECTED or compiled.mode())
    assert f"{engine} engine" in res.stderr


@pytest.mark.skipif(compiled.mode() != "compiled", reason="the engine is not compiled")
@pytest.mark.parametrize("source", ["examples", "synthetic"])
def test_compiled_and_source_engines_give_identical_outputs(tmp_path, source):
    if source == "examples":
        events = EXAMPLES / "events.jsonl"
    else:  # more consumers, identity merges across partitions, timers firing at the close
        events = tmp_path / "events.jsonl"
        events.write_bytes(b"".join(
            orjson.dumps(e) + b"\n" for e in generate_events(3000, 30_000, seed=7)))
    reports = [_replay(events, tmp_path / kind, kind == "source") for kind in ("source", "bin")]
    assert reports[0] == reports[1]
    assert reports[0]["triggers"] and reports[0]["events"] > 0
    for name in OUTPUTS:
        a, b = (tmp_path / kind / name for kind in ("source", "bin"))
        assert a.read_bytes() == b.read_bytes(), name
