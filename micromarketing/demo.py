"""`micromarketing demo`: broker, a worker, the collector and a synthetic bike shop, live.

Time is compressed: the shop's events carry simulated timestamps that run `SPEED` times faster
than the clock (two simulated days per real second by default), and the worker runs in event
time (`--no-wall-clock`), so a 30-minute cart abandonment fires within a second of the next
events and a 45- or 60-day win-back within half a minute. Segment changes and triggers are read
back from the output topics and printed as they come, with a running summary.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from connectors.broker import broker_or_embedded, ensure_topics, free_port, topic_partitions
from micromarketing.processes import child
from streams.contract import (
    ALL_TOPICS,
    SEGMENT_CHANGES,
    SUPPRESSED,
    TRIGGER_TOPICS,
    event_time,
    input_topic,
    record_key,
    timestamp_ms,
    topic_name,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"
#: Simulated seconds per real second (2 days per second).
SPEED = 2 * 86400.0
CONSUMERS = 250
SUMMARY_EVERY = 5.0
MAX_LINES_PER_SECOND = 25


class Style:
    """ANSI colors, only when stdout is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text


class Display:
    """Readable lines for output records, throttled, and a running summary."""

    def __init__(self, out: IO[str], style: Style) -> None:
        self.out = out
        self.s = style
        self.counts: Counter[str] = Counter()
        self.campaigns: Counter[str] = Counter()
        self._second = 0
        self._lines = 0
        self.hidden = 0

    def _emit(self, line: str, important: bool = False) -> None:
        now = int(time.monotonic())
        if now != self._second:
            self._second, self._lines = now, 0
        if not important and self._lines >= MAX_LINES_PER_SECOND:
            self.hidden += 1
            return
        self._lines += 1
        print(line, file=self.out, flush=True)

    def record(self, base: str, rec: dict[str, Any]) -> None:
        s = self.s
        at = str(rec.get("at") or rec.get("fired_at") or rec.get("due_at") or "")[:16]
        who = str(rec.get("consumer_id", "?"))
        if base == SEGMENT_CHANGES:
            change = rec.get("change")
            self.counts[str(change)] += 1
            mark = s("+ entered", "32") if change == "entered" else s("- exited ", "33")
            self._emit(f"{s(at, '2')}  {mark}  {s(str(rec.get('segment')), '1')}  {who}")
        elif base in TRIGGER_TOPICS:
            campaign = str(rec.get("campaign"))
            self.campaigns[campaign] += 1
            holdout = bool(rec.get("holdout"))
            self.counts["holdout" if holdout else "triggers"] += 1
            products = ",".join(rec.get("products") or [])
            tail = s("  (holdout: not sent)", "2") if holdout else ""
            kind = str(rec.get("kind"))
            color = "1;35" if kind == "retargeting" else "1;36"
            self._emit(
                f"{s(at, '2')}  {s('⚡ ' + kind.upper(), color)}  {s(campaign, '1')} -> {who}"
                f"  offer={rec.get('offer')}"
                + (f"  products={products}" if products else "")
                + tail,
                important=True,
            )
        elif base == SUPPRESSED:
            self.counts["suppressed"] += 1
            self._emit(
                f"{s(at, '2')}  {s('  suppressed', '2')}  {rec.get('campaign')} -> {who}"
                f"  ({rec.get('reason')})"
            )

    def summary(self, elapsed: float, published: int, sim_time: float) -> None:
        c = self.counts
        top = ", ".join(f"{k} {v}" for k, v in self.campaigns.most_common(4)) or "none yet"
        when = datetime.fromtimestamp(sim_time, UTC).strftime("%Y-%m-%d %H:%M") if sim_time else "-"
        line = (
            f"[{elapsed:5.0f}s] shop time {when} | events {published} "
            f"({published / max(elapsed, 1e-9):.0f}/s) | segments +{c['entered']} -{c['exited']} "
            f"| triggers {c['triggers']} ({top}) | holdout {c['holdout']} "
            f"| suppressed {c['suppressed']}"
        )
        if self.hidden:
            line += f" | {self.hidden} lines not shown"
        print(self.s(line, "1;34"), file=self.out, flush=True)


def _shop(start: float) -> Iterator[dict[str, Any]]:
    from connectors.sources.synthetic import generate_events

    return generate_events(CONSUMERS, None, seed=int(time.time()) % 1000, start=start)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or `--duration` seconds."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    from streams.live_io import BatchProducer

    rules = Path(args.rules) if args.rules else DEFAULT_RULES
    duration: float | None = args.duration
    style = Style(sys.stdout.isatty())
    out = sys.stdout
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="micromarketing-demo-"))
    print(style("micromarketing demo", "1") + f": rules {rules}, logs in {workdir}", flush=True)
    with broker_or_embedded(args.broker) as bootstrap:
        ensure_topics(bootstrap, [topic_name(t) for t in ALL_TOPICS])
        env = dict(os.environ)
        worker_cmd = [
            sys.executable,
            "-m",
            "micromarketing",
            "worker",
            "--rules",
            str(rules),
            "--broker",
            bootstrap,
            "--app-id",
            f"demo-{uuid.uuid4().hex[:8]}",
            "--data-dir",
            str(workdir / "worker"),
            "--no-wall-clock",
        ]
        with contextlib.ExitStack() as stack:
            worker = stack.enter_context(child(worker_cmd, workdir / "worker.log", env))
            collector_port = None
            if (ROOT / "connectors" / "collector" / "server.py").exists():
                collector_port = free_port()
                stack.enter_context(
                    child(
                        [
                            sys.executable,
                            "-m",
                            "micromarketing",
                            "collector",
                            "--broker",
                            bootstrap,
                            "--port",
                            str(collector_port),
                            "--write-key",
                            "demo",
                        ],
                        workdir / "collector.log",
                        env,
                    )
                )
            print(
                f"broker {bootstrap} | worker pid {worker.pid}"
                + (
                    f" | collector http://127.0.0.1:{collector_port} (write key 'demo')"
                    if collector_port
                    else ""
                )
                + f" | shop: {CONSUMERS} shoppers, {SPEED / 86400:.0f} simulated days per second",
                flush=True,
            )
            print("Ctrl-C stops everything.\n", flush=True)

            reader = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": "demo-display",
                    "enable.auto.commit": False,
                }
            )
            bases = [SEGMENT_CHANGES, *TRIGGER_TOPICS, SUPPRESSED]
            reader.assign(
                [
                    TopicPartition(topic_name(b), p, OFFSET_END)
                    for b in bases
                    for p in range(topic_partitions(bootstrap, topic_name(b)))
                ]
            )
            base_of = {topic_name(b): b for b in bases}
            producer = BatchProducer(bootstrap)
            display = Display(out, style)
            sim_start = time.time() - 90 * 86400.0  # the shop's history ends around now
            events = _shop(sim_start)
            pending: dict[str, Any] | None = next(events, None)
            t0 = time.monotonic()
            published = 0
            sim_now = 0.0
            next_summary = t0 + SUMMARY_EVERY
            try:
                while not stop:
                    now = time.monotonic()
                    elapsed = now - t0
                    if duration is not None and elapsed >= duration:
                        break
                    if worker.poll() is not None:
                        print(
                            f"worker exited ({worker.returncode}); see {workdir}/worker.log",
                            file=sys.stderr,
                        )
                        return 1
                    sim_now = sim_start + elapsed * SPEED
                    while pending is not None:
                        t = event_time(pending)
                        ts = sim_now if t is None else t
                        if ts > sim_now:
                            break
                        producer.produce(
                            topic_name(input_topic(pending)),
                            record_key(pending),
                            orjson.dumps(pending),
                            timestamp_ms=timestamp_ms(ts),
                        )
                        published += 1
                        pending = next(events, None)
                    producer.poll()
                    for msg in reader.consume(500, timeout=0.1):
                        value = msg.value()
                        if msg.error() is None and value:
                            display.record(base_of[msg.topic() or ""], orjson.loads(value))
                    if now >= next_summary:
                        next_summary = now + SUMMARY_EVERY
                        display.summary(elapsed, published, sim_now)
            except KeyboardInterrupt:
                pass
            finally:
                with contextlib.suppress(Exception):
                    producer.flush_blocking(5)
                del producer  # freed while the broker is up: no reconnect errors on the way out
                display.summary(time.monotonic() - t0, published, sim_now)
                reader.close()
                print("stopping...", flush=True)
    print("demo stopped.", flush=True)
    return 0
