"""Every command that talks to Kafka says in one line that no broker answers (exit 1)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.broker import free_port
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.e2e

RULES = str(EXAMPLES / "rules.yaml")
RANGE = ["--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"]
COMMANDS = {
    "tail": ["tail", "segment-changes"],
    "forget": ["forget", "u1"],
    "collector": ["collector", "--port", "0"],
    "worker": ["worker", "--rules", RULES],
    "deliver": ["deliver", "--to", "webhook", "http://127.0.0.1:9/hook", "--secret", "s"],
    "replay": ["replay", "--from-topics", *RANGE, "--rules", RULES, "--out", "OUT"],
}


def test_an_unreachable_broker_is_one_line_for_every_command(tmp_path):
    broker = f"127.0.0.1:{free_port()}"
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "micromarketing", *argv, "--broker", broker],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )
        for name, argv in COMMANDS.items()
    }  # in parallel: each waits a few seconds for the broker
    results = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=90)
        results[name] = (proc.returncode, err.splitlines())
    for name, (code, lines) in results.items():
        assert code == 1 and len(lines) == 1, (name, code, lines)
        assert lines[0].startswith(f"micromarketing {name}: "), lines
        assert broker in lines[0], lines
