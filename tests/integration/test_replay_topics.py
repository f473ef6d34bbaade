"""`micromarketing replay --from-topics` against the embedded broker, compared with the file replay.

The input topic names are fixed, and the broker is shared by the whole session, so each test
writes to its own topics through `MICROMARKETING_TOPIC_PREFIX` (read through `streams.contract`
by the topic replay and the live worker).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition

from connectors.broker import EmbeddedBroker, ensure_topics
from connectors.sources.synthetic import generate_events
from connectors.sources.topics import RangeReader, read_range
from micromarketing.cli import build_parser
from streams.contract import (
    INPUT_TOPICS,
    PREFIX_ENV,
    consumer_key,
    input_topic,
    input_topic_names,
    to_ms_ceil,
)
from streams.engine.events import iso, parse_time
from streams.engine.rules import load_rules
from streams.replay_topics import replay_topics
from streams.report.timeline import Timeline
from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.integration

RULES = EXAMPLES / "rules.yaml"

#: Values that must become dead letters: bad JSON, JSON that is not an object, Avro framing with
#: no registry to read it, and an event without a timestamp (it sorts by its Kafka timestamp).
MALFORMED: list[bytes] = [
    b"{not json",
    b"[1,2,3]",
    b"\x00\x00\x00\x00\x07\x02garbage",
    b'{"type":"track","event":"Product Viewed","userId":"u-bad"}',
]


def _events() -> list[dict[str, Any]]:
    return list(generate_events(n_consumers=50, n_events=3000, seed=3))


def _ms(event: dict[str, Any]) -> int:
    return to_ms_ceil(parse_time(event["timestamp"]))


def _produce(bootstrap: str, prefix: str, events: list[dict[str, Any]]) -> dict[bytes, int]:
    """Events to their input topics (keyed, Kafka timestamp = event time), plus MALFORMED in the
    middle of the range; return the Kafka timestamp given to each malformed value."""
    ensure_topics(bootstrap, [prefix + t for t in INPUT_TOPICS], partitions=4)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20}
    )
    middle = len(events) // 2
    bad_before = {middle + i: value for i, value in enumerate(MALFORMED)}
    bad_at: dict[bytes, int] = {}
    for i, ev in enumerate(events):
        ms = _ms(ev)
        bad = bad_before.get(i)
        if bad is not None:  # in time order, as a live producer would have written it
            producer.produce(prefix + "clickstream", key=b"bad", value=bad, timestamp=ms)
            bad_at[bad] = ms
        key = consumer_key(ev)
        producer.produce(
            prefix + input_topic(ev),
            key=key.encode() if key else None,
            value=orjson.dumps(ev),
            timestamp=ms,
        )
    assert producer.flush(15) == 0
    return bad_at


def _write_events(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(ev) + b"\n" for ev in events))


def _micromarketing(*args: str, prefix: str = "") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, PREFIX_ENV: prefix}
    proc = subprocess.run(
        [sys.executable, "-m", "micromarketing", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def _replay_topics(
    bootstrap: str, prefix: str, out: Path, since: str, until: str
) -> subprocess.CompletedProcess[bytes]:
    return _micromarketing(
        "replay", "--from-topics", "--since", since, "--until", until, "--rules", str(RULES),
        "--out", str(out), "--broker", bootstrap, "--no-progress", prefix=prefix,
    )


def _replay_file(path: Path, out: Path) -> None:
    _micromarketing("replay", str(path), "--rules", str(RULES), "--out", str(out), "--no-progress")


def _read(out: Path, name: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / name).read_bytes().splitlines()]


def _trigger_ids(out: Path) -> set[str]:
    return {t["trigger_id"] for t in _read(out, "triggers.jsonl")}


def _changes(out: Path) -> list[tuple[str, str, str, str]]:
    return sorted(
        (c["consumer_id"], c["segment"], c["change"], c["at"])
        for c in _read(out, "segment_changes.jsonl")
    )


def _suppressed(out: Path) -> list[bytes]:
    records = _read(out, "suppressed.jsonl")
    return sorted(orjson.dumps(s, option=orjson.OPT_SORT_KEYS) for s in records)


def test_full_range_matches_the_file_replay(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"rt-{unique}-"
    events = _events()
    bad_at = _produce(broker.bootstrap, prefix, events)
    events_file = tmp_path / "events.jsonl"
    _write_events(events_file, events)

    since = events[0]["timestamp"]
    until = iso(_ms(events[-1]) / 1000 + 0.001)
    from_topics, from_file = tmp_path / "topics", tmp_path / "file"
    _replay_topics(broker.bootstrap, prefix, from_topics, since, until)
    _replay_file(events_file, from_file)

    assert _trigger_ids(from_topics) == _trigger_ids(from_file)
    assert _trigger_ids(from_file)  # the comparison means something
    assert _changes(from_topics) == _changes(from_file)
    assert _suppressed(from_topics) == _suppressed(from_file)

    dead = _read(from_topics, "dead_letters.jsonl")
    assert sorted(d["raw"] for d in dead) == sorted(v.decode() for v in MALFORMED)
    # named as the live worker names them: base topic, and topic:partition:offset
    assert all(d["source"] == "clickstream" for d in dead)
    assert all(d["offset"].startswith("clickstream:") for d in dead)
    assert all(d["reason"] for d in dead)
    assert not _read(from_file, "dead_letters.jsonl")

    report = orjson.loads((from_topics / "report.json").read_bytes())
    file_report = orjson.loads((from_file / "report.json").read_bytes())
    assert report["input_lines"] == len(events) + len(bad_at)
    assert report["events"] == file_report["events"] == len(events)
    assert report["dead_letters"] == len(MALFORMED)
    assert report["triggers"] == file_report["triggers"]
    assert report["since"] == iso(parse_time(since))
    assert report["until"] == until
    assert report["topics"] == [prefix + t for t in INPUT_TOPICS]
    assert report["partitions"] == 4
    # both write the backtest page, from the same daily series
    for out in (from_topics, from_file):
        assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert Timeline.from_dir(from_topics).to_dict() == Timeline.from_dir(from_file).to_dict()


def test_sub_range_replays_only_the_events_in_it(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"rt-sub-{unique}-"
    events = _events()
    _produce(broker.bootstrap, prefix, events)
    since, until = events[1000]["timestamp"], events[2000]["timestamp"]  # until is exclusive
    inside = events[1000:2000]
    sub_file = tmp_path / "inside.jsonl"
    _write_events(sub_file, inside)

    from_topics, from_file = tmp_path / "topics", tmp_path / "file"
    _replay_topics(broker.bootstrap, prefix, from_topics, since, until)
    _replay_file(sub_file, from_file)

    report = orjson.loads((from_topics / "report.json").read_bytes())
    # the malformed values are stamped in the middle of the full range, inside this one
    assert report["events"] == len(inside)
    assert report["input_lines"] == len(inside) + len(MALFORMED)
    assert _trigger_ids(from_topics) == _trigger_ids(from_file)
    assert _changes(from_topics) == _changes(from_file)
    assert _suppressed(from_topics) == _suppressed(from_file)
    lo, hi = parse_time(since), parse_time(until)
    assert all(lo <= parse_time(c["at"]) < hi for c in _read(from_topics, "segment_changes.jsonl"))


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["replay", "--rules", str(RULES), *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--until", "2026-01-02T00:00:00Z", "--broker", "x:1"], "--since and --until"),
        (["--since", "2026-01-01T00:00:00Z", "--broker", "x:1"], "--since and --until"),
        (["--since", "yesterday", "--until", "2026-01-02T00:00:00Z", "--broker", "x:1"],
         "not ISO-8601"),
        (["--since", "2026-01-02T00:00:00Z", "--until", "2026-01-02T00:00:00Z", "--broker",
          "x:1"], "must be before"),
        (["--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"], "--broker"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args("--from-topics", "--out", str(tmp_path / "out"), *argv)
    assert replay_topics(args, load_rules(str(RULES)), tmp_path / "out", None) == 2
    assert message in capsys.readouterr().err


def test_missing_topics_exit_1(
    broker: EmbeddedBroker, unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PREFIX_ENV, f"rt-none-{unique}-")
    args = _args(
        "--from-topics", "--out", str(tmp_path / "out"), "--since", "2026-01-01T00:00:00Z",
        "--until", "2026-01-02T00:00:00Z", "--broker", broker.bootstrap,
    )
    assert replay_topics(args, load_rules(str(RULES)), tmp_path / "out", None) == 1
    assert "none of the input topics" in capsys.readouterr().err


def test_small_buffers_pause_and_resume_without_loss(broker: EmbeddedBroker, unique: str) -> None:
    """With tiny per-partition buffers the reader pauses and resumes partitions all the time;
    it must still read every record exactly once, in the same order."""
    prefix = f"rt-buf-{unique}-"
    events = _events()[:600]
    _produce(broker.bootstrap, prefix, events)
    since, until = parse_time(events[0]["timestamp"]), _ms(events[-1]) / 1000 + 0.001
    topics = input_topic_names(prefix)
    records, counts = read_range(broker.bootstrap, since, until, topics)
    default = [(r.where, r.key) for r in records]
    records, _ = read_range(broker.bootstrap, since, until, topics, buffer_high=20, buffer_low=5)
    small = [(r.where, r.key) for r in records]
    assert counts == dict.fromkeys(topics, 4)
    assert small == default
    assert len(default) == len(events) + len(MALFORMED)
    assert [k for _, k in default] == sorted(k for _, k in default)  # the log is in time order


class _SilentConsumer:
    """A consumer whose broker never answers: no record and no EOF, ever."""

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        time.sleep(timeout)
        return []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = partitions

    def resume(self, partitions: list[TopicPartition]) -> None:
        raise AssertionError("nothing to resume")


def test_idle_partition_ends_after_the_idle_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """Without an EOF (end offsets cannot be trusted on Tansu), silence ends a partition."""
    consumer = _SilentConsumer()
    starts = [(TopicPartition("clickstream", 0, 0), "clickstream")]
    reader = RangeReader(consumer, starts, 0, 10**13, idle_timeout=0.3)  # type: ignore[arg-type]
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="connectors.sources.topics"):
        assert list(reader.merged()) == []
    assert 0.3 <= time.monotonic() - started < 3
    assert "taking it as the end of the partition" in caplog.text
    assert [tp.partition for tp in consumer.paused] == [0]
