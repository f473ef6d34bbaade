"""Replay throughput: events/s through the engine, peak RSS, bytes of state per consumer.

    python bench/replay.py [--events 200000] [--consumers 20000] [--rules FILE]

Baselines measured in the same run: decoding + validating the same events alone (the floor
any engine pays), and the engine with an empty rule set (features and state only), so the
ratios show what segments and triggers cost on top. A last case runs segments that time alone
moves (days_since_*, p_alive, rfm), then advances 30 days past the input: re-checks per second.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import orjson
from common import history, history_arguments

from streams import compiled
from streams.engine.events import parse_event
from streams.engine.rules import load_rules, loads_rules
from streams.engine.view import View
from streams.runtime import Runtime, tune_gc


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_only(lines: list[bytes]) -> float:
    t = time.perf_counter()
    for line in lines:
        parse_event(orjson.loads(line))
    return time.perf_counter() - t


def engine_run(
    lines: list[bytes], rules_path: str | None, text: str | None
) -> tuple[float, Runtime]:
    rules = load_rules(rules_path) if rules_path else loads_rules(text or "", "<bench>")
    router = Runtime(rules, 4)
    tune_gc()  # as the replay command and the worker do
    t = time.perf_counter()
    for line in lines:
        router.process(line)
    router.flush()
    return time.perf_counter() - t, router


TIME_RULES = """
segments:
  - name: quiet-week
    when: days_since_last_seen > 7d
  - name: lapsing
    when: orders >= 2 and p_alive < 0.3
  - name: champions
    when: rfm.r >= 4 and rfm.f >= 4
  - name: at-risk-loyal
    when: orders >= 3 and days_since_last_order > 45d
"""


def time_driven(lines: list[bytes]) -> tuple[float, float, int]:
    """(events/s, re-checks/s over 30 days of silence after the input, re-checks)."""
    router = Runtime(loads_rules(TIME_RULES, "<bench>"), 4)
    t = time.perf_counter()
    for line in lines:
        router.process(line)
    events_t = time.perf_counter() - t
    end = max(e.watermark for e in router.engines.values()) + 30 * 86400.0
    before = router.stats()["rechecks"]
    t = time.perf_counter()
    router.advance(end)
    close_t = time.perf_counter() - t
    rechecks = router.stats()["rechecks"] - before
    return len(lines) / events_t, rechecks / close_t if close_t else 0.0, rechecks


def identity_merges(rules_path: str, pairs: int = 20000) -> float:
    """Events/s over pairs of (anonymous view, identify merging it into a user): every identify
    sends a merge_out and a merge_in between partitions, in process as objects."""
    from streams.engine.events import iso

    t0 = 1_767_225_600.0
    lines = []
    for i in range(pairs):
        lines.append(orjson.dumps({
            "type": "track", "event": "Product Viewed", "anonymousId": f"a{i}",
            "messageId": f"v{i}", "timestamp": iso(t0 + i),
            "properties": {"product_id": "p", "price": 10.0, "category": "road"}}))
        lines.append(orjson.dumps({
            "type": "identify", "anonymousId": f"a{i}", "userId": f"u{i}",
            "messageId": f"i{i}", "timestamp": iso(t0 + i + 0.5),
            "traits": {"email": f"u{i}@example.com"}}))
    return len(lines) / engine_run(lines, rules_path, None)[0]


def segment_eval_cost(router: Runtime, samples: int = 20000) -> float:
    """Mean microseconds to evaluate every segment of the rules once for one consumer."""
    from streams.engine.segments import SegmentPlan, evaluate

    engine = router.engines[0]
    plan = SegmentPlan.of(engine.rules)
    states = [
        s
        for k, _ in list(engine.store.items())[:samples]
        if k.startswith("c/") and (s := engine.consumer(k[2:])) is not None
    ]
    now = max(s.last_seen for s in states)
    t = time.perf_counter()
    for s in states:
        evaluate(plan, View(s, now, engine.population, engine._models, set(s.segments)))
    return (time.perf_counter() - t) / len(states) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    history_arguments(ap)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    a = ap.parse_args()

    lines = history(a.events, a.consumers)
    n = len(lines)
    mb = sum(map(len, lines)) / 1e6

    parse_t = min(parse_only(lines) for _ in range(a.repeat))
    empty_t = min(engine_run(lines, None, "segments: []\n")[0] for _ in range(a.repeat))
    runs = [engine_run(lines, a.rules, None) for _ in range(a.repeat)]
    full_t, router = min(runs, key=lambda r: r[0])
    times = sorted(r[0] for r in runs)

    state_bytes = [len(v) for e in router.engines.values() for k, v in e.store.items()
                   if k.startswith("c/")]
    consumers = len(state_bytes)
    eval_us = segment_eval_cost(router)

    print(f"engine               : {compiled.mode()} (MICROMARKETING_PURE=1 runs the source)")
    print(f"input: {n} events ({mb:.1f} MB JSON), {consumers} consumers, "
          f"{len(router.engines[0].rules.segments)} segments, "
          f"{len(router.engines[0].rules.triggers)} triggers")
    print(f"decode+validate only : {n / parse_t:>10,.0f} events/s  (baseline)")
    print(f"engine, no rules     : {n / empty_t:>10,.0f} events/s  "
          f"({parse_t / empty_t:.2f}x baseline)")
    print(f"engine, bike-shop    : {n / full_t:>10,.0f} events/s  "
          f"({parse_t / full_t:.2f}x baseline, {empty_t / full_t:.2f}x no-rules)  "
          f"median of {len(times)}: {n / statistics.median(times):,.0f}")
    print(f"per event            : {full_t / n * 1e6:.1f} us  "
          f"(segments evaluation {eval_us:.1f} us per consumer per event)")
    print(f"state per consumer   : mean {statistics.mean(state_bytes):.0f} B, "
          f"p99 {sorted(state_bytes)[int(0.99 * consumers)]} B, max {max(state_bytes)} B")
    print(f"peak RSS             : {_peak_rss_mb():.0f} MB")
    stats = router.stats()
    print(f"re-checks            : {stats['rechecks']} during the input (bike-shop rules)")
    ev_s, rc_s, rechecks = max((time_driven(lines) for _ in range(a.repeat)), key=lambda r: r[0])
    print(f"time-driven segments : {ev_s:>10,.0f} events/s, then {rechecks} re-checks over 30 "
          f"silent days at {rc_s:,.0f} re-checks/s")
    merges = max(identity_merges(a.rules) for _ in range(a.repeat))
    print(f"identity merges      : {merges:>10,.0f} events/s  (anonymous view + identify pairs)")
    print(f"outputs              : {sum(v for k, v in stats.items() if k.startswith('triggers:'))}"
          f" triggers, {sum(v for k, v in stats.items() if k.startswith('entered:'))} segment"
          f" entries")


if __name__ == "__main__":
    main()
