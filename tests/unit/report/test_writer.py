"""PageWriter: report.html drawn by a child process started before the replay."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from streams.report.html import render
from streams.report.writer import ROOT, PageWriter, child_environment
from tests.unit.report.conftest import Replayed


def test_the_child_draws_the_page_from_the_timeline_fed_in_this_process(
    example: Replayed, tmp_path: Path
) -> None:
    writer = PageWriter(tmp_path)
    writer.timeline = example.timeline  # as OutputFiles would have fed it
    assert writer.finish(example.report)
    html = (tmp_path / "report.html").read_text()
    assert '<figure id="plot-segment-sizes"><svg' in html and "4,359" in html


def test_a_page_that_cannot_be_written_is_said_on_stderr_and_reported(
    example: Replayed, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "report.html").mkdir()  # the page's path is taken
    writer = PageWriter(tmp_path)
    assert not writer.finish(example.report)
    err = capfd.readouterr().err
    assert "report.html was not written" in err and "--no-html skips it" in err
    assert "Is a directory" in err and "Traceback" not in err


def test_cancel_stops_the_child_without_a_page(tmp_path: Path) -> None:
    writer = PageWriter(tmp_path)
    writer.cancel()
    writer.cancel()  # twice is harmless
    assert not (tmp_path / "report.html").exists()


def test_the_timeline_is_handed_over_when_the_outputs_are_done_and_the_page_waits_for_the_report(
    example: Replayed, tmp_path: Path
) -> None:
    writer = PageWriter(tmp_path)
    writer.timeline = example.timeline
    writer.outputs_done()
    writer.outputs_done()  # once is enough; twice is harmless
    time.sleep(0.5)  # the child draws the timeline's plots meanwhile
    assert not (tmp_path / "report.html").exists()
    assert writer.finish(example.report)
    html = (tmp_path / "report.html").read_text()
    assert html == render(example.report, example.timeline)


def test_a_child_gone_before_the_hand_over_fails_the_page_with_a_reason_not_a_traceback(
    example: Replayed, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    writer = PageWriter(tmp_path)
    writer.cancel()  # the child is gone
    writer.outputs_done()
    assert not writer.finish(example.report)
    err = capfd.readouterr().err
    assert "report.html was not written" in err and "Traceback" not in err


def test_a_child_given_the_timeline_but_no_report_writes_nothing(
    example: Replayed, tmp_path: Path
) -> None:
    line = orjson.dumps({"timeline": example.timeline.to_state()}) + b"\n"
    done = subprocess.run([sys.executable, "-m", "streams.report.child", str(tmp_path)],
                          input=line, capture_output=True, timeout=120)
    assert done.returncode == 0 and done.stderr == b""
    assert not (tmp_path / "report.html").exists()


def test_the_child_keeps_numpy_to_one_thread_and_finds_this_tree_first() -> None:
    env = child_environment({"PYTHONPATH": "elsewhere", "HOME": "/home/x"})
    # OpenBLAS's idle threads spin: CPU that the page's process would spend for nothing
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["HOME"] == "/home/x"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "elsewhere"]
