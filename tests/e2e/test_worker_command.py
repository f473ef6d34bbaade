"""`micromarketing worker` refuses what it cannot run, clearly and before joining anything."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.broker import free_port
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e


def worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "worker", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_bad_rules_file_is_refused_with_the_line(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - name: x\n    when: orderz > 1\n")
    res = worker("--rules", str(bad), "--broker", f"127.0.0.1:{free_port()}")
    assert res.returncode == 1
    assert "rules.yaml:3:11: unknown feature 'orderz'" in res.stderr
    assert "Traceback" not in res.stderr


def test_unreachable_broker_is_a_clear_error():
    res = worker("--rules", str(EXAMPLES / "rules.yaml"), "--broker", f"127.0.0.1:{free_port()}")
    assert res.returncode == 1
    assert "micromarketing worker: no Kafka broker answers" in res.stderr
    assert "Traceback" not in res.stderr
