"""The hostile corpus (tests/hostile.py) through `micromarketing replay`: nothing crashes, every
line is accounted for, and every line with a fixed fate gets its reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.engine.events import REASONS
from tests.conftest import EXAMPLES
from tests.hostile import generate, write

pytestmark = pytest.mark.e2e


def replay(events: Path, out: Path, pure: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MICROMARKETING_PURE"}
    if pure:
        env["MICROMARKETING_PURE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "replay", str(events), "--rules",
         str(EXAMPLES / "rules.yaml"), "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )


@pytest.mark.parametrize("pure", [True, False], ids=["source", "compiled-if-built"])
def test_hostile_corpus_replays_with_exact_accounting(tmp_path, pure):
    lines, expected = generate(6000, seed=12)
    write(tmp_path / "hostile.jsonl", lines)
    res = replay(tmp_path / "hostile.jsonl", tmp_path / "out", pure)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr and "lines are dead letters" not in res.stderr
    # the corpus's far-ahead times are said to be refused, with the setting that would admit them
    assert "events were more than settings.max_clock_skew ahead" in res.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    non_blank = sum(1 for line in lines if line.strip())
    assert report["input_lines"] == non_blank >= 5000
    assert report["applied"] + report["duplicates"] + report["dead_letters"] == non_blank
    assert report["applied"] > 1000 and report["duplicates"] > 100
    dead = [json.loads(x) for x in (tmp_path / "out" / "dead_letters.jsonl").read_text()
            .splitlines()]
    assert len(dead) == report["dead_letters"] == sum(report["dead_letters_by_reason"].values())
    assert set(report["dead_letters_by_reason"]) <= set(REASONS)
    by_line = {int(d["offset"]): d["reason"] for d in dead}
    assert by_line == expected  # each refused line for its own reason, and no other line
    assert all(d["message"] and len(d["raw"]) <= 16_384 for d in dead)


def test_a_file_that_is_mostly_not_events_gets_a_warning(tmp_path):
    (tmp_path / "junk.jsonl").write_bytes(b"hello\nworld\n[1]\n" + b'{"type": "track"}\n')
    res = replay(tmp_path / "junk.jsonl", tmp_path / "out", pure=True)
    assert res.returncode == 0, res.stderr
    assert "warning: 4 of 4 lines are dead letters" in res.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dead_letters_by_reason"] == {"invalid_json": 2, "bad_type": 1,
                                                "missing_field": 1}


def test_the_compiled_and_the_source_engine_write_the_same_outputs(tmp_path):
    lines, _ = generate(6000, seed=13)
    write(tmp_path / "hostile.jsonl", lines)
    for pure in (True, False):
        res = replay(tmp_path / "hostile.jsonl", tmp_path / str(pure), pure)
        assert res.returncode == 0, res.stderr
    for name in ("triggers.jsonl", "segment_changes.jsonl", "suppressed.jsonl",
                 "dead_letters.jsonl", "profiles.jsonl"):
        assert (tmp_path / "True" / name).read_bytes() == (tmp_path / "False" / name).read_bytes()
