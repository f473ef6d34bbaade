"""`micromarketing replay`: the partition runtime in event time over a file of events (or the
topics), as the live worker runs it.

Events are processed in file order through `streams.runtime.Runtime` (an unordered file is
not sorted: the stream clock only moves forward, so an event older than it is still applied, it
just cannot fire timers in the past). Before an event at t is applied, every partition is
advanced to t less the allowed lateness, so timers of sparse partitions fire on time. Outputs
are deterministic: two runs over the same input write byte-identical JSON-lines files; only the
`timing` block of report.json varies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from streams import compiled
from streams.engine.events import EventError, parse_time
from streams.engine.outputs import Outputs
from streams.engine.rules import RulesError, RuleSet, load_rules
from streams.measure.results import CampaignResults, feed
from streams.report.timeline import TRIGGERS_PREFIX, Timeline
from streams.report.writer import PageWriter
from streams.runtime import DEFAULT_PARTITIONS, Runtime, tune_gc

OUTPUT_FILES = {
    "triggers": "triggers.jsonl",
    "segment_changes": "segment_changes.jsonl",
    "suppressed": "suppressed.jsonl",
    "dead_letters": "dead_letters.jsonl",
    "conversions": "conversions.jsonl",
}
#: the topic each kind of output is counted under in report.html's timeline (triggers of every
#: campaign alike)
TIMELINE_TOPICS = {
    kind: TRIGGERS_PREFIX if kind == "triggers" else kind.replace("_", "-") for kind in OUTPUT_FILES
}
#: output records held per kind before the timeline counts them together (`Timeline.add_many`
#: per record costs a function call; per few thousand, next to nothing)
TIMELINE_BATCH = 4096
#: every consumer as the rules see it at the end of the replay, one line each
#: (`streams.engine.snapshot`; the live worker's `GET /v1/profiles/{id}` gives the same features)
PROFILES_FILE = "profiles.jsonl"


class OutputFiles:
    """The JSON-lines files of a replay, written as outputs come (and counted into `timeline`,
    the daily series of report.html, when there is one, TIMELINE_BATCH records of a kind at a
    time). `on_outputs_done` is called once the last output is written, before profiles.jsonl
    (report.html's plots are drawn meanwhile)."""

    def __init__(
        self,
        out_dir: Path,
        timeline: Timeline | None = None,
        on_outputs_done: Callable[[], None] | None = None,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.dir = out_dir
        self.timeline = timeline
        self.on_outputs_done = on_outputs_done
        self._held: dict[str, list[dict[str, Any]]] = {kind: [] for kind in OUTPUT_FILES}
        self._files: dict[str, IO[bytes]] = {
            kind: open(out_dir / name, "wb")  # noqa: SIM115 - closed in close()
            for kind, name in OUTPUT_FILES.items()
        }

    def write(self, out: Outputs) -> None:
        for kind in OUTPUT_FILES:
            records: list[dict[str, Any]] = getattr(out, kind)
            if records:
                f = self._files[kind]
                for rec in records:
                    f.write(orjson.dumps(rec))
                    f.write(b"\n")
                if self.timeline is not None:
                    held = self._held[kind]
                    held += records
                    if len(held) >= TIMELINE_BATCH:
                        self._count()

    def _count(self) -> None:
        """Count the held records into the timeline."""
        if self.timeline is not None:
            for kind, held in self._held.items():
                if held:
                    self.timeline.add_many(TIMELINE_TOPICS[kind], held)
                    self._held[kind] = []

    def outputs_done(self) -> None:
        """Say that every output record has been written (the timeline has counted them all)."""
        self._count()
        if self.on_outputs_done is not None:
            self.on_outputs_done()

    def write_profiles(self, runtime: Runtime) -> None:
        """`profiles.jsonl`: one snapshot per consumer, at the stream clock."""
        with open(self.dir / PROFILES_FILE, "wb") as f:
            for profile in runtime.profiles():
                f.write(orjson.dumps(profile))
                f.write(b"\n")

    def close(self) -> None:
        self._count()
        for f in self._files.values():
            f.close()

    def __enter__(self) -> OutputFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a JSON-lines file ('-' is stdin), skipping blank lines."""
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for lineno, line in enumerate(stream, 1):
            line = line.strip()
            if line:
                yield lineno, line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _progress(path: str, enabled: bool) -> Any:
    if not enabled or path == "-" or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc="replay",
                file=sys.stderr)


def replay(
    lines: Iterable[tuple[str, str, bytes | dict[str, Any]]],
    runtime: Runtime,
    files: OutputFiles,
    close_at: float | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Feed (source, offset, raw event) triples through the partition runtime; return the
    report."""
    started = time.perf_counter()
    n = 0
    process = runtime.process
    results = CampaignResults()
    for source, offset, raw in lines:
        out = process(raw, source, offset)
        files.write(out)
        if out.triggers or out.conversions:
            feed(results, out)
        n += 1
        if progress is not None and isinstance(raw, bytes):
            progress.update(len(raw) + 1)
    if close_at is not None:
        out = runtime.close(close_at)
        files.write(out)
        feed(results, out)
    files.outputs_done()
    files.write_profiles(runtime)
    elapsed = time.perf_counter() - started
    report = build_report(runtime, n, elapsed)
    report["campaigns"] = campaigns(results, runtime)
    return report


def campaigns(results: CampaignResults, runtime: Runtime) -> dict[str, Any]:
    """report.json's `campaigns`: the triggers whose attribution window closed by the end of
    the input (the stream clock: the last event's time, or --close-at)."""
    if runtime.clock == float("-inf"):
        return {}
    return results.report(datetime.fromtimestamp(runtime.clock, UTC))


def build_report(runtime: Runtime, lines: int, elapsed: float) -> dict[str, Any]:
    """Counts per campaign, segment and reason; deterministic but for `timing`."""
    stats = runtime.stats()
    groups: dict[str, Counter[str]] = {}
    totals: dict[str, int] = {}
    for key, value in sorted(stats.items()):
        if ":" in key:
            group, name = key.split(":", 1)
            groups.setdefault(group, Counter())[name] += value
        else:
            totals[key] = value
    # every non-blank input line is applied, a duplicate or a dead letter
    applied, duplicates = totals.get("applied", 0), totals.get("duplicates", 0)
    dead_letters = totals.get("dead_letters", 0)
    if lines and dead_letters * 2 > lines:
        print(
            f"warning: {dead_letters} of {lines} lines are dead letters: is this a Segment "
            "events file? (reasons in dead_letters.jsonl)",
            file=sys.stderr,
        )
    skewed = totals.get("beyond_clock_skew", 0)
    if skewed:
        print(
            f"warning: {skewed} events were more than settings.max_clock_skew ahead of the "
            "stream clock and refused (time_out_of_range); if the history has quiet periods "
            "longer than that, raise max_clock_skew in the rules file",
            file=sys.stderr,
        )
    segments = runtime.rules.segment_names()
    entered = {name: 0 for name in segments} | dict(groups.get("entered", {}))
    exited = {name: 0 for name in segments} | dict(groups.get("exited", {}))
    campaigns = [t.name for t in runtime.rules.triggers]
    return {
        "input_lines": lines,
        "applied": applied,
        "events": applied + duplicates,  # valid events (applied or duplicates)
        "dead_letters": dead_letters,
        "dead_letters_by_reason": dict(groups.get("dead_letter", {})),
        "duplicates": duplicates,
        "forwarded": totals.get("forwarded", 0),
        "merged": totals.get("merged", 0),
        "partitions": runtime.partitions,
        "consumers": runtime.consumers(),
        "pending_timers": runtime.pending_timers(),
        # per campaign: delivered (holdout: false) and held-out triggers, together the lines
        # of triggers.jsonl
        "triggers": {name: 0 for name in campaigns} | dict(groups.get("triggers", {})),
        "holdout": {name: 0 for name in campaigns} | dict(groups.get("holdout", {})),
        "conversions": totals.get("conversions", 0),
        "suppressed": dict(groups.get("suppressed", {})),
        "not_eligible": dict(groups.get("not_eligible", {})),
        "segments_entered": entered,
        "segments_exited": exited,
        # members at the end of the input: every membership change is a segment_changes line
        "segment_sizes": {name: entered.get(name, 0) - exited.get(name, 0) for name in entered},
        "timing": {
            "seconds": round(elapsed, 3),
            "events_per_second": round(lines / elapsed) if elapsed > 0 else None,
            "engine": compiled.mode(),  # "compiled" (mypyc) or "source"
        },
    }


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    (out_dir / "report.json").write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def rules_and_close(args: argparse.Namespace) -> tuple[RuleSet, float | None] | int:
    """The rules and `--close-at` of a replay command, or its exit code after saying what is
    wrong (1: a bad rules file, 2: unreadable, or a bad time)."""
    try:
        rules = load_rules(args.rules)
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"micromarketing replay: cannot read the rules file {args.rules}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    close_at = None
    if getattr(args, "close_at", None):
        try:
            close_at = parse_time(args.close_at, "--close-at")
        except EventError as exc:
            print(f"micromarketing replay: {exc}", file=sys.stderr)
            return 2
    return rules, close_at


def run(args: argparse.Namespace) -> int:
    loaded = rules_and_close(args)
    if isinstance(loaded, int):
        return loaded
    rules, close_at = loaded
    partitions = args.partitions or DEFAULT_PARTITIONS
    out_dir = Path(args.out)
    if not args.events:
        print("micromarketing replay: give EVENTS.jsonl (or --from-topics)", file=sys.stderr)
        return 2
    if args.events != "-" and not Path(args.events).exists():
        print(f"micromarketing replay: no such file: {args.events}", file=sys.stderr)
        return 2
    runtime = Runtime(rules, partitions)
    tune_gc()
    progress = _progress(args.events, not args.no_progress)
    source = Path(args.events).name if args.events != "-" else "stdin"
    page = None if getattr(args, "no_html", False) else PageWriter(out_dir)
    try:
        with OutputFiles(out_dir, page.timeline if page else None,
                         page.outputs_done if page else None) as files:
            lines = ((source, str(no), line) for no, line in read_lines(args.events))
            report = replay(lines, runtime, files, close_at, progress)
    except BaseException:
        if page is not None:
            page.cancel()
        raise
    if progress is not None:
        progress.close()
    write_report(out_dir, report)
    if page is not None and not page.finish(report):
        return 1
    t = report["timing"]
    print(
        f"replayed {report['input_lines']} events in {t['seconds']}s "
        f"({t['events_per_second']} events/s, {t['engine']} engine): "
        f"{sum(report['triggers'].values())} triggers delivered + "
        f"{sum(report['holdout'].values())} held out, {report['conversions']} conversions, "
        f"{sum(report['suppressed'].values())} suppressed, {report['dead_letters']} dead "
        f"letters -> {out_dir}",
        file=sys.stderr,
    )
    return 0
