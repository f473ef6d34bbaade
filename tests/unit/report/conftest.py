"""The bike-shop example replayed once for the report tests (in process, with its timeline)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.engine.rules import load_rules
from streams.replay import OutputFiles, read_lines, replay, write_report
from streams.report.timeline import Timeline
from streams.runtime import Runtime
from tests.conftest import EXAMPLES


@dataclass
class Replayed:
    out: Path
    report: dict
    timeline: Timeline


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    out = tmp_path_factory.mktemp("example")
    timeline = Timeline()
    runtime = Runtime(load_rules(str(EXAMPLES / "rules.yaml")), 4)
    with OutputFiles(out, timeline) as files:
        lines = (("events.jsonl", str(n), line)
                 for n, line in read_lines(str(EXAMPLES / "events.jsonl")))
        report = replay(lines, runtime, files, close_at=None)
    write_report(out, report)
    return Replayed(out, report, timeline)
