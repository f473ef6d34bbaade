"""PageWriter: report.html drawn by a child process started before the replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.report.writer import PageWriter
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
