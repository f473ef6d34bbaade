"""`micromarketing demo --duration N`: broker, worker and shop come up, triggers show, all stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def test_demo_shows_segments_and_triggers_then_stops() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "micromarketing", "demo", "--duration", "25"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "+ entered" in out
    assert "RETARGETING" in out  # 30-minute carts fire within seconds of compressed time
    assert "| triggers " in out  # the running summary
    assert out.rstrip().endswith("demo stopped.")
