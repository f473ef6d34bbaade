"""Child processes of the demo and the benchmarks: started with a log file, stopped cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def child(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, stop_timeout: float = 20.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` with its output appended to `log`; on exit SIGTERM it, SIGKILL if it lingers."""
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env or dict(os.environ)
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
