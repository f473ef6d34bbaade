"""The demo's loop: the shop publishes in compressed time, outputs are read back and shown, and
delivered triggers go back to the shop (the closed loop).

Time is compressed: the shop's events carry simulated timestamps that run `--speed` simulated
days per real second (2 by default), and the worker runs in event time (`--no-wall-clock`), so
a 30-minute cart abandonment fires within a second of the next events and a 45- or 60-day
win-back within half a minute. The shop keeps a steady population (connectors/sources/
open_shop.py), so the event rate is the same in the tenth minute as in the first.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from connectors.broker import broker_or_embedded, ensure_topics, topic_partitions
from connectors.sources.open_shop import OpenShop, iso_seconds
from micromarketing.demo.args import DEFAULT_UPLIFT
from micromarketing.demo.board import FOLLOW_LEGEND, Board, Follow, Style, Tally, shop_time, table
from micromarketing.demo.results import LiveResults, conversions_topic, lift_text, points
from micromarketing.demo.stack import Stack, log_tail, start, workdir
from streams.contract import (
    ALL_TOPICS,
    DEFAULT_PARTITIONS,
    SEGMENT_CHANGES,
    SUPPRESSED,
    TRIGGER_TOPICS,
    event_time,
    input_topic,
    record_key,
    timestamp_ms,
    topic_name,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"
DAY = 86400.0
#: The shop's producer batches this long: few, big batches keep the embedded broker fast.
SHOP_LINGER_MS = 200
#: Partitions of every topic on the embedded broker: its fetches list every stored batch of a
#: partition, and producers batch per partition, so one partition makes 4 times fewer batches.
EMBEDDED_PARTITIONS = 1
PROFILE_TTL = "180d"
RECENT = 10.0  # seconds of the "now" event rate


def demo_rules(folder: Path) -> Path:
    """The bike-shop rules with `settings.profile_ttl` (when they set none), copied to `folder`.

    A demo minute is four simulated months, so shoppers who lapsed pile up in the worker's state
    (3,000 after 10 minutes) and their timers and re-checks make every minute dearer than the
    one before; erased after PROFILE_TTL idle, their number levels off."""
    text = DEFAULT_RULES.read_text()
    if "profile_ttl" not in text:
        line = f"  profile_ttl: {PROFILE_TTL}   # added by the demo\n"
        if "\nsettings:\n" in text:
            text = text.replace("\nsettings:\n", "\nsettings:\n" + line, 1)
        else:
            text += "\nsettings:\n" + line
    path = folder / "rules.yaml"
    path.write_text(text)
    return path


class Stop(Exception):
    """SIGTERM: leave like Ctrl-C."""


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM raises Stop, SIGINT KeyboardInterrupt; once the way out has begun, further
    signals are ignored so the children stop and the folder goes."""

    def _term(*_: Any) -> None:
        _on_the_way_out()
        raise Stop

    def _int(*_: Any) -> None:
        _on_the_way_out()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _int)
    try:
        yield
    finally:
        _on_the_way_out()


def _on_the_way_out() -> None:
    """A second Ctrl-C must not cut short stopping the children and removing the folder."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class Rates:
    """Events published per window of `width` real seconds (the steady-rate figure), and the
    median trigger lag in each."""

    def __init__(self, width: float, t0: float) -> None:
        self.width = width
        self.t0 = t0
        self.counts: list[int] = []
        self.lags: list[list[float]] = []
        self._last: deque[tuple[float, int]] = deque()

    def _slot(self, now: float) -> int:
        i = int((now - self.t0) // self.width)
        while len(self.counts) <= i:
            self.counts.append(0)
            self.lags.append([])
        return i

    def published(self, now: float, n: int) -> None:
        self.counts[self._slot(now)] += n
        self._last.append((now, n))
        while self._last[0][0] < now - RECENT:
            self._last.popleft()

    def recent(self) -> float:
        """Events per second over the last RECENT seconds."""
        if len(self._last) < 2:
            return 0.0
        span = self._last[-1][0] - self._last[0][0]
        return sum(n for _, n in self._last) / max(span, 1.0)

    def lag(self, now: float, seconds: float) -> None:
        self.lags[self._slot(now)].append(seconds)

    def summary(self, now: float) -> list[str]:
        full = int((now - self.t0) // self.width)  # windows that ended
        rates = [f"{c / self.width:.0f}" for c in self.counts[:full]]
        lags = []
        for xs in self.lags[:full]:
            lags.append(f"{sorted(xs)[len(xs) // 2]:.2f}" if xs else "-")
        return [
            f"events/s per {self.width:g} s window: {' '.join(rates) or '-'}",
            f"median trigger lag (real s) per window: {' '.join(lags) or '-'}",
        ]


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `--duration` seconds."""
    uplift = dict(DEFAULT_UPLIFT)
    uplift.update(dict(args.uplift))
    try:
        with _signals(), workdir() as folder:
            code = _run(args, folder, uplift)
    except (KeyboardInterrupt, Stop):
        code = 0
    print("demo stopped.", flush=True)
    return code


def _run(args: argparse.Namespace, folder: Path, uplift: dict[str, float]) -> int:
    rules = Path(args.rules) if args.rules else demo_rules(folder)
    shown = args.rules or f"the bike shop's, with profile_ttl {PROFILE_TTL}"
    with broker_or_embedded(args.broker) as bootstrap:
        names = [topic_name(t) for t in ALL_TOPICS]
        # (on a Kafka of yours, topics missing are made with the usual partition count)
        ensure_topics(
            bootstrap, names, EMBEDDED_PARTITIONS if args.broker is None else DEFAULT_PARTITIONS
        )
        with start(bootstrap, rules, folder) as stack:
            print(stack.console_line(), flush=True)
            print(
                f"collector: http://127.0.0.1:{stack.collector_port}/ (write key 'demo')",
                flush=True,
            )
            print(f"broker: {bootstrap}", flush=True)
            print(
                f"shop: about {args.shoppers} active shoppers, {args.speed:g} simulated days per "
                f"second; rules: {shown}; Ctrl-C stops everything",
                flush=True,
            )
            try:
                return _loop(args, stack, uplift)
            finally:
                if stack.worker.poll() is not None:
                    print(log_tail(folder / "worker.log"), file=sys.stderr)


def _reader(bootstrap: str, bases: list[str]) -> Any:
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition

    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "demo-display", "enable.auto.commit": False}
    )
    reader.assign(
        [
            TopicPartition(topic_name(b), p, OFFSET_END)
            for b in bases
            for p in range(topic_partitions(bootstrap, topic_name(b)))
        ]
    )
    return reader


def _loop(args: argparse.Namespace, stack: Stack, uplift: dict[str, float]) -> int:
    from streams.live_io import BatchProducer

    speed = args.speed * DAY  # simulated seconds per real second
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    sim_start = time.time() - 90 * DAY
    shop = OpenShop(args.shoppers, seed=seed, start=sim_start, uplift=uplift)
    tty = sys.stdout.isatty()
    every = args.every if args.every is not None else (1.0 if tty else 10.0)
    out = sys.stdout
    style = Style(tty)
    bases = [SEGMENT_CHANGES, *TRIGGER_TOPICS, SUPPRESSED]
    conv = conversions_topic()
    if conv is not None:
        bases.append(conv)
    base_of = {topic_name(b): b for b in bases}
    reader = _reader(stack.bootstrap, bases)
    linger: dict[str, Any] = {"linger.ms": SHOP_LINGER_MS}
    producer = BatchProducer(stack.bootstrap, **linger)
    tally = Tally()
    results = LiveResults()
    note = "" if results.available else (
        "lift: this build has no conversion attribution (streams.measure) yet"
    )
    follow = Follow(out, style) if args.follow else None
    board = None if follow else Board(out, tty)
    if follow is not None:
        print(FOLLOW_LEGEND, flush=True)
    t0 = time.monotonic()
    rates = Rates(args.rate_window, t0)
    published = 0
    sim_now = sim_start
    next_draw = t0
    try:
        while True:
            now = time.monotonic()
            elapsed = now - t0
            if args.duration is not None and elapsed >= args.duration:
                break
            if stack.worker.poll() is not None:
                print(f"worker exited ({stack.worker.returncode})", file=sys.stderr)
                return 1
            sim_now = sim_start + elapsed * speed
            batch = shop.until(sim_now)
            for ev in batch:
                t = event_time(ev)
                producer.produce(
                    topic_name(input_topic(ev)),
                    record_key(ev),
                    orjson.dumps(ev),
                    timestamp_ms=timestamp_ms(sim_now if t is None else t),
                )
            published += len(batch)
            rates.published(now, len(batch))
            producer.poll()
            for msg in reader.consume(1000, timeout=0.05):
                value = msg.value()
                if msg.error() is not None or not value:
                    continue
                base = base_of[msg.topic() or ""]
                rec = orjson.loads(value)
                tally.add(base, rec, now)
                results.add(base, rec)
                if follow is not None:
                    follow.add(base, rec)
                if base in TRIGGER_TOPICS:
                    shop.deliver(rec)
                    fired = iso_seconds(rec.get("fired_at"))
                    if fired is not None:
                        rates.lag(now, (sim_now - fired) / speed)
                        tally.lags.append((sim_now - fired) / speed)
            if now >= next_draw:
                next_draw = now + every
                header = _header(elapsed, sim_now, published, rates, shop, tally)
                if follow is not None:
                    follow.flush()
                    print(style(header, "1;34"), flush=True)
                elif board is not None:
                    report = results.report(sim_now)
                    board.draw(table(tally, header, now, report, uplift, note))
            elif follow is not None:
                follow.flush()
    finally:
        _on_the_way_out()
        with contextlib.suppress(Exception):
            producer.flush_blocking(5)
        del producer  # freed while the broker is up: no reconnect errors on the way out
        reader.close()
        _final(time.monotonic(), sim_now, published, rates, results, tally, uplift, shop)
    return 0


def _header(
    elapsed: float, sim_now: float, published: int, rates: Rates, shop: OpenShop, tally: Tally
) -> str:
    last = rates.recent()
    lag = tally.lag()
    return (
        f"shop time {shop_time(sim_now)} | {elapsed:4.0f} s | {published} events "
        f"({last:.0f}/s now) | {shop.active} shoppers | trigger lag "
        f"{'-' if lag is None else f'{lag:.1f} s'} | offers persuaded {shop.stats['persuaded']}"
    )


def _final(
    now: float,
    sim_now: float,
    published: int,
    rates: Rates,
    results: LiveResults,
    tally: Tally,
    uplift: dict[str, float],
    shop: OpenShop,
) -> None:
    lines = ["", f"summary: {published} events up to shop time {shop_time(sim_now)}"]
    lines += rates.summary(now)
    report = results.report(sim_now)
    if report is None:
        lines.append("campaign results: this build has no conversion attribution yet")
        for c in sorted(set(tally.sent) | set(tally.held)):
            lines.append(f"  {c}: sent {tally.sent[c]}, held out {tally.held[c]}")
    else:
        lines.append("campaign results (triggers whose attribution window closed):")
        for c in sorted(report):
            row = report[c]
            held = row.get("conversion_rate_holdout")
            expect = uplift.get(c, 0.0) * (1 - held) if isinstance(held, float) else None
            lines.append(
                f"  {c}: lift {lift_text(row)} points (sent {row.get('treated')}, held "
                f"{row.get('holdout')}; planted uplift {points(uplift.get(c, 0.0))}, expected "
                f"lift {points(expect)})"
            )
    lines.append(f"shop: {dict(shop.stats)}")
    print("\n".join(lines), flush=True)

