"""This tree against another checkout (the previous main), measured in the same run.

    python bench/against.py REF_OR_DIR [--events 200000] [--rounds 5] [--live-rounds 3]

REF_OR_DIR is a directory holding a checkout (compiled in place first when it is not yet), or a
git ref, checked out into a temporary worktree and compiled with mypyc (1-3 min). Each round
runs every case once in each tree, in fresh processes, the order of the trees swapped every
round, so a change of the machine's load touches both alike:

- replay, bike-shop rules (each tree's own examples/bike-shop/rules.yaml) / no rules: the
  partition runtime's loop over the same events as bench/replay.py (`process` of every line,
  then `flush`), wall and CPU seconds;
- live: each tree's own `bench/live.py --skip ab` (its worker on the embedded broker, the
  committed offsets' rate), unless `--live-rounds 0`;
- live, output span (`--span`): each tree's worker command over the same backlog on one broker
  setup made here, timed by its outputs: the events over the time from its first to its last
  `segment-changes` record (their producer timestamps). The committed offsets move only at
  commits, and a worker that commits a catch-up in a few large batches makes them move late
  at the start and early at the end (or the other way round) by up to a batch: the output span
  is the same measure for any commit cadence.

It prints the best and the median of each case per tree, and the ratio this / other; then the
ratio within each round (both trees' runs back to back; wall time for replay), their median,
and their geometric mean with a 95% bootstrap interval over the rounds: on a shared machine one
round's noise can exceed the difference being measured, and the interval says whether the
rounds run settle it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ROOT, history  # bench/ is on sys.path when run as a script

#: run in a child process in a tree's directory: events/s of one replay loop over the file
CHILD = r"""
import resource, sys, time
sys.path.insert(0, ".")
from streams.engine.rules import load_rules, loads_rules
try:
    from streams.runtime import Runtime
except ImportError:  # (a tree from before the partition runtime)
    from streams.router import Router as Runtime
from streams.runtime import tune_gc
from streams import compiled
path, rules_path = sys.argv[1], sys.argv[2]
lines = open(path, "rb").read().split(b"\n")
lines = [line for line in lines if line]
rules = loads_rules("segments: []\n", "<none>") if rules_path == "-" else load_rules(rules_path)
runtime = Runtime(rules, 4)
tune_gc()
usage = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
c, t = usage(), time.perf_counter()
for line in lines:
    runtime.process(line)
runtime.flush()
wall, cpu = time.perf_counter() - t, usage() - c
# (VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's size at the fork)
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(len(lines) / wall, len(lines) / cpu, rss, compiled.mode())
"""

LIVE_LINE = re.compile(r"^\(c\)\s+([\d,]+) events/s", re.M)


def prepare(ref: str) -> Path:
    """A compiled checkout of `ref` (a directory, or a git ref put in a temporary worktree)."""
    tree = Path(ref)
    if not tree.is_dir():
        tree = Path(tempfile.mkdtemp(prefix="against-")) / "tree"
        done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                               ref], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"against.py: {ref!r} is neither a directory nor a git ref: "
                             f"{done.stderr.strip()}")
    if not list(tree.glob("micromarketing_core__mypyc*.so")):
        print(f"compiling {tree} with mypyc (1-3 min) ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                              cwd=tree, env=dict(os.environ, MICROMARKETING_COMPILE="1"),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"against.py: {tree} does not compile:\n{done.stderr[-2000:]}")
    return tree


def replay_once(tree: Path, events: Path, rules: str) -> tuple[float, float, float, str]:
    env = {k: v for k, v in os.environ.items() if k != "MICROMARKETING_PURE"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(events), rules], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the replay in {tree} failed:\n{done.stderr}")
    out = done.stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), out[3]


def live_once(tree: Path, events: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MICROMARKETING_PURE"}
    done = subprocess.run(
        [sys.executable, "bench/live.py", "--skip", "ab", "--events", str(events),
         "--latency-seconds", "2", "--warmup", "2"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"against.py: {tree}/bench/live.py failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    found = LIVE_LINE.search(out)
    if found is None:
        raise RuntimeError(f"no (c) line in the output of {tree}/bench/live.py:\n{out}")
    return float(found.group(1).replace(",", ""))


def live_span_once(tree: Path, events: list[dict[str, Any]]) -> float:
    """Events/s of `tree`'s worker over `events` loaded as a backlog: len(events) over the
    span of its `segment-changes` records' timestamps (see the module's docstring)."""
    import live  # bench/live.py: this tree's loader and topic layout, the same for both trees
    from confluent_kafka import Consumer, TopicPartition

    from connectors.broker import EmbeddedBroker

    n = len(events)
    with tempfile.TemporaryDirectory(prefix="span-") as tmp, EmbeddedBroker(
        log_file=Path(tmp) / "broker.log"
    ) as broker:
        prefix = f"span{uuid.uuid4().hex[:6]}."
        live.load(broker.bootstrap, prefix, events)
        app_id = f"span-{uuid.uuid4().hex[:6]}"
        cmd = [sys.executable, "-m", "micromarketing", "worker", "--rules",
               "examples/bike-shop/rules.yaml", "--app-id", app_id, "--data-dir",
               f"{tmp}/worker", "--broker", broker.bootstrap, "--no-wall-clock"]
        env = {k: v for k, v in os.environ.items() if k != "MICROMARKETING_PURE"}
        env["MICROMARKETING_TOPIC_PREFIX"] = prefix
        with open(Path(tmp) / "worker.log", "wb") as log:
            proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                live.wait_committed(broker.bootstrap, f"{app_id}-inputs",
                                    [prefix + t for t in live.INPUT_TOPICS], n, proc)
            except (RuntimeError, TimeoutError) as exc:  # (its worker's log says more)
                raise SystemExit(f"against.py: the worker of {tree}: {exc}") from None
            finally:
                proc.terminate()
                proc.wait(timeout=120)
        reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": app_id + "-span",
                           "enable.auto.commit": False})
        try:
            parts = [TopicPartition(prefix + live.SEGMENT_CHANGES, p, 0)
                     for p in range(live.PARTITIONS)]
            left = sum(reader.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
            reader.assign(parts)
            first, last = math.inf, -math.inf
            while left > 0:
                msgs = reader.consume(10_000, timeout=10)
                if not msgs:
                    raise RuntimeError(f"{tree}: {left} segment changes not readable in 10 s")
                for msg in msgs:
                    if msg.error() is None:
                        ts = msg.timestamp()[1] / 1000.0
                        first, last = min(first, ts), max(last, ts)
                        left -= 1
        finally:
            reader.close()
    if not last > first:
        raise RuntimeError(f"{tree}: its worker wrote no segment changes over {n} events")
    return n / (last - first)


def live_events(n: int) -> list[dict[str, Any]]:
    """The backlog of bench/live.py's stage (c): the same events for both trees."""
    import live

    return live.events(n, seed=5)


def report(case: str, this: list[float], other: list[float], unit: str) -> None:
    best, median = max(this) / max(other), statistics.median(this) / statistics.median(other)
    print(f"{case:<22} this: best {max(this):>9,.0f}  median {statistics.median(this):>9,.0f}"
          f"   other: best {max(other):>9,.0f}  median {statistics.median(other):>9,.0f}"
          f"  {unit}   this/other: best {best:.3f}, median {median:.3f}")


def paired(this: list[float], other: list[float]) -> None:
    """The ratio of the two runs of each round (run back to back, so a slow spell of the
    machine touches both; the medians above mix rounds of different spells)."""
    ratios = [t / o for t, o in zip(this, other, strict=True)]
    print(f"{'':<22} per round this/other: {' '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}")
    if len(ratios) >= 3:
        mean, low, high = geometric_interval(ratios)
        print(f"{'':<22} geometric mean {mean:.3f}, 95% interval {low:.3f}..{high:.3f} "
              f"(bootstrap over the {len(ratios)} rounds)")


def geometric_interval(ratios: list[float]) -> tuple[float, float, float]:
    """The geometric mean of the ratios and its 95% BCa bootstrap interval (the mean of the
    logarithms: a round twice as fast weighs as much as one twice as slow)."""
    import numpy as np
    from scipy.stats import bootstrap

    logs = np.log(ratios)
    if np.ptp(logs) == 0.0:  # (identical ratios: no spread to resample)
        return ratios[0], ratios[0], ratios[0]
    result = bootstrap((logs,), np.mean, rng=np.random.default_rng(0))
    ci = result.confidence_interval
    return math.exp(float(np.mean(logs))), math.exp(ci.low), math.exp(ci.high)


def count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is below {least}")
        return value

    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", metavar="REF_OR_DIR", help="the checkout to compare with")
    ap.add_argument("--events", type=count(1000), default=200_000,
                    help="replay events (default 200000)")
    ap.add_argument("--consumers", type=count(1), default=20_000, help="consumers (default 20000)")
    ap.add_argument("--rounds", type=count(0), default=5, help="replay rounds (default 5)")
    ap.add_argument("--live-rounds", type=count(0), default=3, help="live rounds (0: none)")
    ap.add_argument("--live-events", type=count(100_000), default=200_000,
                    help="live events (default 200000; at least 100000: a backlog committed "
                    "at once has no rate)")
    ap.add_argument("--span", action="store_true",
                    help="the live rounds also time each worker by its output span")
    a = ap.parse_args()

    other = prepare(a.other)
    trees = {"this": ROOT, "other": other}
    rules = "examples/bike-shop/rules.yaml"  # each tree's own (a tree reads the settings it knows)
    with tempfile.TemporaryDirectory(prefix="against-") as tmp:
        events = Path(tmp) / "events.jsonl"
        events.write_bytes(b"\n".join(history(a.events, a.consumers)) + b"\n")
        cases = {"bike-shop": rules, "no rules": "-"}
        got: dict[tuple[str, str], list[tuple[float, float, float, str]]] = {}
        for r in range(a.rounds):
            order = ("this", "other") if r % 2 == 0 else ("other", "this")
            for case, path in cases.items():
                for name in order:
                    got.setdefault((case, name), []).append(
                        replay_once(trees[name], events, path))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
        live: dict[str, list[float]] = {"this": [], "other": []}
        span: dict[str, list[float]] = {"this": [], "other": []}
        backlog = live_events(a.live_events) if a.span and a.live_rounds else []
        for r in range(a.live_rounds):
            for name in ("this", "other") if r % 2 == 0 else ("other", "this"):
                live[name].append(live_once(trees[name], a.live_events))
                if a.span:
                    span[name].append(live_span_once(trees[name], backlog))
            print(f"live round {r + 1}/{a.live_rounds} done: this {live['this'][-1]:,.0f}, "
                  f"other {live['other'][-1]:,.0f} events/s"
                  + (f"; output span: this {span['this'][-1]:,.0f}, other "
                     f"{span['other'][-1]:,.0f}" if a.span else ""),
                  file=sys.stderr, flush=True)

    if a.rounds:
        print(f"this: {ROOT} ({got[('bike-shop', 'this')][0][3]} engine); other: {other} "
              f"({got[('bike-shop', 'other')][0][3]} engine)")
    else:
        print(f"this: {ROOT}; other: {other}")
    print(f"replay: {a.events} events, {a.consumers} consumers, {a.rounds} rounds; "
          f"live: {a.live_events} events, {a.live_rounds} rounds")
    for case in cases if a.rounds else ():
        this, oth = got[(case, "this")], got[(case, "other")]
        report(f"replay {case} (wall)", [x[0] for x in this], [x[0] for x in oth], "events/s")
        report(f"replay {case} (CPU)", [x[1] for x in this], [x[1] for x in oth], "events/s")
        paired([x[0] for x in this], [x[0] for x in oth])
        print(f"{'':<22} peak RSS this {max(x[2] for x in this):,.0f} MB, "
              f"other {max(x[2] for x in oth):,.0f} MB")
    if a.live_rounds:
        report("live worker", live["this"], live["other"], "events/s")
        paired(live["this"], live["other"])
    if a.live_rounds and a.span:
        report("live (output span)", span["this"], span["other"], "events/s")
        paired(span["this"], span["other"])


if __name__ == "__main__":
    main()
