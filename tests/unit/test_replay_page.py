"""How a replay feeds report.html: its outputs counted into the timeline a batch at a time, and
the timeline handed over once the last output is written."""

from __future__ import annotations

from pathlib import Path

from streams.engine.events import parse_time
from streams.engine.outputs import Outputs
from streams.engine.rules import load_rules
from streams.replay import TIMELINE_BATCH, OutputFiles, read_lines, replay
from streams.report.timeline import Timeline
from streams.runtime import Runtime
from tests.conftest import EXAMPLES


def entered(n: int) -> dict:
    return {"consumer_id": f"c{n}", "segment": "s", "change": "entered",
            "at": f"2026-01-{1 + n % 3:02d}T10:00:00Z"}


def test_the_replay_hands_the_timeline_over_once_after_its_last_output_before_profiles(
    tmp_path: Path,
) -> None:
    seen: list[tuple[bool, dict]] = []
    timeline = Timeline()
    runtime = Runtime(load_rules(str(EXAMPLES / "rules.yaml")), 4)

    def outputs_done() -> None:
        seen.append(((tmp_path / "profiles.jsonl").exists(), timeline.to_dict()))

    with OutputFiles(tmp_path, timeline, outputs_done) as files:
        lines = (("events.jsonl", str(n), line)
                 for n, line in read_lines(str(EXAMPLES / "events.jsonl")))
        replay(lines, runtime, files, close_at=parse_time("2027-02-01T00:00:00Z"))
    assert len(seen) == 1
    profiles_written, series = seen[0]
    assert not profiles_written
    assert series == timeline.to_dict() == Timeline.from_dir(tmp_path).to_dict()


def test_outputs_are_counted_a_batch_at_a_time_and_all_of_them_by_the_end(
    tmp_path: Path,
) -> None:
    timeline = Timeline()
    with OutputFiles(tmp_path, timeline) as files:
        for n in range(2 * TIMELINE_BATCH + 5):
            out = Outputs()
            out.segment_changes.append(entered(n))
            files.write(out)
            held = sum(len(records) for records in files._held.values())
            assert held < TIMELINE_BATCH  # never more records than a batch in memory
            assert held == (n + 1) % TIMELINE_BATCH
    # closing counted the rest
    assert timeline.segment_sizes()["s"][-1] == 2 * TIMELINE_BATCH + 5
