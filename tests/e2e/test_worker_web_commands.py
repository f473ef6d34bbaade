"""The worker's web port and `micromarketing profile`: a port in use or a worker that does not
answer is one line on stderr, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_web_port_in_use_is_refused_in_one_line_before_joining_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run("worker", "--rules", str(EXAMPLES / "rules.yaml"), "--web-port", str(port))
    assert res.returncode == 1  # (a runtime failure, as for every command: cli.py)
    assert res.stderr.strip().splitlines() == [
        f"micromarketing worker: port {port} is in use (Address already in use); pick another "
        "with --web-port N"
    ]


def test_profile_of_a_worker_that_does_not_answer_says_so_in_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (closed again: nothing listens there)
    res = run("profile", "u-1", "--worker", f"127.0.0.1:{port}")
    assert res.returncode == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith(f"micromarketing profile: no answer from http://127.0.0.1:{port}")


def test_profile_without_a_worker_says_how_to_find_one() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "micromarketing", "profile", "u-1"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if k != "MICROMARKETING_WORKER"},
    )
    assert res.returncode == 2 and "worker web: URL" in res.stderr
