"""`replay --close-at`: time-driven segments change at their crossings and at the close."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RULES = """
segments:
  - name: quiet
    when: days_since_last_seen > 10d
  - name: lapsing
    when: orders >= 2 and p_alive < 0.5
settings:
  reevaluate_every: 3650d
"""
EVERY_MS = 3650 * 86_400_000


def first_re_check(cid: str, after_ms: int) -> int:
    phase = zlib.crc32(cid.encode()) % EVERY_MS
    return phase + ((after_ms - phase) // EVERY_MS + 1) * EVERY_MS


def replay(tmp_path: Path, cid: str, *extra: str) -> list[tuple[str, str, str, str]]:
    tmp_path.mkdir()
    events = tmp_path / "events.jsonl"
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events.write_text("".join(
        json.dumps({"type": "track", "event": "Order Completed", "userId": cid,
                    "messageId": f"m{i}", "timestamp": ts,
                    "properties": {"order_id": f"o{i}", "revenue": 20}}) + "\n"
        for i, ts in enumerate(["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"])
    ))
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, "-m", "micromarketing", "replay", str(events), "--rules", str(rules),
         "--out", str(out), "--partitions", "2", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in (out / "segment_changes.jsonl").read_text().splitlines()]
    return [(r["consumer_id"], r["segment"], r["change"], r["at"]) for r in rows]


def test_close_at_fires_crossings_and_re_evaluates_every_consumer_at_the_close(tmp_path):
    close_ms = 1_767_225_600_000 + 100 * 86_400_000  # 2026-04-11
    # a consumer whose first cadence re-check comes after the close
    cid = next(c for c in (f"u{i}" for i in range(100))
               if first_re_check(c, 1_767_312_000_000) > close_ms)
    assert replay(tmp_path / "open", cid) == []
    changes = replay(tmp_path / "closed", cid, "--close-at", "2026-04-11T00:00:00Z")
    assert changes == [
        (cid, "quiet", "entered", "2026-01-12T00:00:00.001Z"),  # the exact crossing
        (cid, "lapsing", "entered", "2026-04-11T00:00:00.000Z"),  # found at the close
    ]
