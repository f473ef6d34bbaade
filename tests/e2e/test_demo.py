"""`micromarketing demo`: the console line first, a live table, a steady event rate, and nothing
left behind however it stops."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp)}  # the demo's temporary folder goes there


def _demo(tmp: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(tmp),
    )


def _window_rates(out: str) -> tuple[list[float], list[float | None]]:
    rates = re.search(r"events/s per [\d.]+ s window: ([\d ]+)\n", out)
    lags = re.search(r"median trigger lag \(real s\) per window: ([\d. -]+)\n", out)
    assert rates and lags, out[-3000:]
    return (
        [float(x) for x in rates.group(1).split()],
        [None if x == "-" else float(x) for x in lags.group(1).split()],
    )


def test_the_demo_opens_with_the_console_line_shows_the_table_and_sums_up(
    tmp_path: Path,
) -> None:
    proc = _demo(tmp_path, "--duration", "25", "--every", "5")
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = out.splitlines()
    assert lines[0].startswith("console: "), lines[:3]  # the URL, or why there is no console
    assert lines[1].startswith("collector: http://127.0.0.1:")
    assert lines[2].startswith("broker: 127.0.0.1:")
    assert "\033[" not in out  # not a terminal: plain blocks, no cursor moves
    assert "segments (size)" in out and "legend: " in out
    assert re.search(r"cart-abandonment +\d+ +[1-9]\d*", out)  # triggers sent within seconds
    assert "summary: " in out and "campaign results" in out
    assert out.rstrip().endswith("demo stopped.")
    assert not list(tmp_path.iterdir())


def test_follow_prints_the_stream_with_its_legend(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--duration", "20", "--follow")
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "legend: + entered" in out
    assert "+ entered" in out and "RETARGETING" in out
    assert "segments (size)" not in out


def test_on_a_terminal_the_table_is_redrawn_in_place(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "micromarketing", "demo", "--duration", "12"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,  # what a user sees: no log line may come before the console's
        env=_env(tmp_path),
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the demo and its children are gone
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(60)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert out.startswith("console: ")
    redraws = re.findall(r"\033\[(\d+)F", out)  # cursor up to the table's first line
    assert len(redraws) >= 5
    table = out.split("\033[" + redraws[-1] + "F")[-1].split("summary: ")[0]
    lines = [line.replace("\033[K", "").rstrip("\r") for line in table.split("\n")]
    assert "segments (size)" in lines and all(len(x) < 120 for x in lines)  # none wraps
    assert out.rstrip().endswith("demo stopped.")


@pytest.mark.slow
def test_the_event_rate_and_the_workers_pace_hold_over_the_run(tmp_path: Path) -> None:
    # four 20 s windows (the 10-minute figure is in the README); the first one includes the
    # worker joining its group, so the worker's pace is judged on the later ones
    proc = _demo(tmp_path, "--duration", "82", "--rate-window", "20", "--seed", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rates, lags = _window_rates(proc.stdout)
    assert len(rates) == 4, rates
    assert abs(rates[-1] - rates[0]) <= 0.2 * rates[0], rates
    assert min(rates) > 300, rates
    # the worker keeps up: triggers reach the shop within a second or two of their due time
    later = [x for x in lags[1:] if x is not None]
    assert later and max(later) < 3.0, lags  # (the window is 3.5 s at this speed)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_everything_and_removes_the_temporary_folder(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "micromarketing", "demo", "--every", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("shop time"):
                break
        else:
            pytest.fail("the demo did not start")
        folders = [p for p in tmp_path.iterdir() if p.name.startswith("micromarketing-demo-")]
        assert len(folders) == 1 and (folders[0] / "worker.log").exists()
        time.sleep(2)
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert rest.rstrip().endswith("demo stopped.")
    assert not list(tmp_path.iterdir())
