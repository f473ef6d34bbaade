"""`micromarketing replay --from-topics`: the file replay's loop over a time range of the topics.

`connectors.sources.topics` reads [--since, --until) of the input topics in event-time order;
this feeds the records to the same `streams.replay.replay` loop as the file replay, each with
its base topic as source and `topic:partition:offset` as offset, as the live worker does. A
value that does not decode becomes the contract's dead letter (`streams.contract.undecodable`),
the one the live worker writes. Outputs are the file replay's: the same JSON-lines files and
report, with `since`, `until` and `topics` added to the report.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from connectors.sources.topics import TopicRecord, TopicReplayError, read_range
from streams.contract import DEFAULT_PARTITIONS, input_topic_names, undecodable
from streams.engine.events import EventError, iso, parse_time
from streams.engine.outputs import Outputs
from streams.engine.rules import RuleSet
from streams.replay import OutputFiles, replay, rules_and_close, write_report
from streams.report.writer import PageWriter
from streams.runtime import Runtime

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """Entry point of `micromarketing replay --from-topics`; the exit code."""
    loaded = rules_and_close(args)
    if isinstance(loaded, int):
        return loaded
    rules, close_at = loaded
    return replay_topics(args, rules, Path(args.out), close_at)


def _time_range(args: argparse.Namespace) -> tuple[float, float]:
    since_text, until_text = getattr(args, "since", None), getattr(args, "until", None)
    if not since_text or not until_text:
        raise TopicReplayError("replay --from-topics needs both --since and --until (ISO-8601)")
    try:
        since = parse_time(since_text, "--since")
        until = parse_time(until_text, "--until")
    except EventError as exc:
        raise TopicReplayError(str(exc)) from None
    if since >= until:
        raise TopicReplayError(f"--since ({iso(since)}) must be before --until ({iso(until)})")
    return since, until


class Feed:
    """The records as (source, offset, raw) for the replay loop; undecodable values are written
    as dead letters here (the runtime never sees them) and counted."""

    def __init__(self, files: OutputFiles, progress: Any) -> None:
        self.files = files
        self.progress = progress
        self.undecodable = 0

    def __call__(self, records: Iterable[TopicRecord]) -> Iterator[tuple[str, str, Any]]:
        for rec in records:
            if self.progress is not None:
                self.progress.update(1)
            if rec.error is not None:
                assert isinstance(rec.value, bytes)
                out = Outputs()
                k = rec.key
                out.dead_letters.append(
                    undecodable(rec.base_topic, k.partition, k.offset, rec.value, rec.error)
                )
                self.files.write(out)
                self.undecodable += 1
                continue
            yield rec.base_topic, rec.where, rec.value


def _router_partitions(args: argparse.Namespace, counts: dict[str, int]) -> int:
    """`--partitions`, else the input topics' partition count, else the default."""
    if args.partitions:
        return int(args.partitions)
    distinct = set(counts.values())
    if len(distinct) == 1:
        return distinct.pop()
    if distinct:
        log.warning(
            "input topics are not co-partitioned (%s); using %d engine partitions",
            counts, DEFAULT_PARTITIONS,
        )
    return DEFAULT_PARTITIONS


def replay_topics(
    args: argparse.Namespace, rules: RuleSet, out_dir: Path, close_at: float | None
) -> int:
    """Run the engine over [--since, --until) of the input topics; return the exit code."""
    try:
        if getattr(args, "events", None):
            raise TopicReplayError("replay takes EVENTS.jsonl or --from-topics, not both")
        since, until = _time_range(args)
        if not getattr(args, "broker", None):
            raise TopicReplayError(
                "replay --from-topics needs --broker HOST:PORT (an embedded broker would be "
                "empty)"
            )
    except TopicReplayError as exc:  # a usage mistake
        print(f"micromarketing replay: {exc}", file=sys.stderr)
        return 2
    try:
        topics = input_topic_names()
        records, counts = read_range(
            args.broker, since, until, topics, verbose=bool(getattr(args, "verbose", False))
        )
    except TopicReplayError as exc:  # the broker or the topics
        print(f"micromarketing replay: {exc}", file=sys.stderr)
        return 1
    except KafkaException as exc:
        print(f"micromarketing replay: broker {args.broker}: {exc}", file=sys.stderr)
        return 1
    runtime = Runtime(rules, _router_partitions(args, counts))
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(unit="ev", desc="replay", file=sys.stderr)
    page = None if getattr(args, "no_html", False) else PageWriter(out_dir)
    try:
        with OutputFiles(out_dir, page.timeline if page else None,
                         page.outputs_done if page else None) as files:
            feed = Feed(files, progress)
            report = replay(feed(records), runtime, files, close_at)
    except BaseException as exc:
        if page is not None:
            page.cancel()
        if not isinstance(exc, KafkaException):
            raise
        print(f"micromarketing replay: reading the topics failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if progress is not None:
            progress.close()
    report["input_lines"] += feed.undecodable
    report["dead_letters"] += feed.undecodable
    report["since"] = iso(since)
    report["until"] = iso(until)
    report["topics"] = list(topics)
    write_report(out_dir, report)
    if page is not None and not page.finish(report):
        return 1
    t = report["timing"]
    print(
        f"replayed {report['input_lines']} records of {', '.join(topics)} from {iso(since)} to "
        f"{iso(until)} in {t['seconds']}s: {sum(report['triggers'].values())} triggers, "
        f"{sum(report['suppressed'].values())} suppressed, {report['dead_letters']} dead "
        f"letters -> {out_dir}",
        file=sys.stderr,
    )
    return 0
