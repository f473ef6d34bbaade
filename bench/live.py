"""Live throughput and latency on the embedded broker (or --broker), same events for each stage.

  (a) raw confluent-kafka consume -> produce pass-through (the floor of the broker + client)
  (b) a naive Faust agent: a rocksdb table update and an awaited send per event
  (c) our worker (`micromarketing worker`, bike-shop rules, one process)
  (d) latency from event produce to segment change, our worker, at a fixed rate (after a
      warm-up: the first live events fire the timers of the backlog of (c)), the events produced
      with `--linger-ms` (5, as the collector does)

Throughput of (b) and (c) is measured on the consumer group's committed offsets (from the first
commit to all events committed), so start-up and group join are excluded.

    python bench/live.py [--events 200000] [--rate 5000] [--latency-seconds 10]

On the embedded broker (Tansu, memory storage) a fetch lists every stored batch of each
partition it reads, and the broker process tops out at about one core: its fetch time grows with
the number of batches, so latency in (d) grows over a run, the faster the more batches the
producer makes. At 5000 events/s spread over 12 input partitions, `--linger-ms 1` stores about
one batch per event.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from connectors.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from micromarketing.processes import child  # noqa: E402
from streams import compiled  # noqa: E402
from streams.contract import ALL_TOPICS, INPUT_TOPICS, SEGMENT_CHANGES  # noqa: E402
from streams.live_io import BatchProducer, produce_events  # noqa: E402

PARTITIONS = 4
RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"


def events(n: int, seed: int, start: float | None = None) -> list[dict[str, Any]]:
    from connectors.sources.synthetic import generate_events

    kwargs: dict[str, Any] = {} if start is None else {"start": start}
    return list(generate_events(max(200, n // 15), n, seed=seed, **kwargs))


def load(bootstrap: str, prefix: str, evs: list[dict[str, Any]]) -> None:
    ensure_topics(bootstrap, [prefix + t for t in ALL_TOPICS], PARTITIONS)
    producer = BatchProducer(bootstrap)
    produce_events(producer, evs, prefix)
    producer.flush_blocking(120)


def committed(bootstrap: str, group: str, topics: list[str]) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def wait_committed(
    bootstrap: str,
    group: str,
    topics: list[str],
    n: int,
    proc: subprocess.Popen[bytes],
    timeout: float = 900,
) -> float:
    """Seconds from the first committed offset to `n` committed."""
    first: float | None = None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{group} exited with {proc.returncode}")
        done = committed(bootstrap, group, topics)
        now = time.monotonic()
        if done and first is None:
            first, first_done = now, done
        if done >= n:
            assert first is not None
            if done == first_done:
                raise RuntimeError("all events were committed at the first look: use --events")
            # the first commit already covered `first_done` events: count them at the rate seen
            span = now - first
            return span * n / max(n - first_done, 1)
        time.sleep(0.1)
    raise TimeoutError(f"group {group} committed {committed(bootstrap, group, topics)} of {n}")


# ----------------------------------------------------------------------------------- (a)
def raw_passthrough(bootstrap: str, prefix: str, n: int) -> float:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(prefix + t, p, 0) for t in INPUT_TOPICS for p in range(PARTITIONS)])
    producer = BatchProducer(bootstrap)
    out = prefix + "raw-out"
    ensure_topics(bootstrap, [out], PARTITIONS)
    seen = 0
    t0: float | None = None
    while seen < n:
        msgs = c.consume(10000, timeout=1.0)
        if t0 is None and msgs:
            t0 = time.monotonic()
        for m in msgs:
            if m.error() is None:
                producer.produce(out, m.key(), m.value())
                seen += 1
    producer.flush_blocking(60)
    assert t0 is not None
    c.close()
    return n / (time.monotonic() - t0)


# ----------------------------------------------------------------------------------- (b)
NAIVE_APP = """
import faust, sys
prefix, bootstrap, datadir, port = sys.argv[1:5]
sys.argv = [sys.argv[0], "worker", "-l", "warn"]
app = faust.App("naive-" + prefix.strip("."), broker="kafka://" + bootstrap, store="rocksdb://",
                datadir=datadir, web_port=int(port), web_host="127.0.0.1",
                broker_session_timeout=6.0, broker_heartbeat_interval=1.5,
                topic_partitions=4, consumer_auto_offset_reset="earliest",
                recovery_consistency_check=False, broker_commit_interval=1.0)
src = app.topic(*[prefix + t for t in ("clickstream", "purchases", "identities")],
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
out = app.topic(prefix + "naive-out", key_type=bytes, value_type=bytes,
                key_serializer="raw", value_serializer="raw")
table = app.Table("naive", default=int, partitions=4)

@app.agent(src)
async def naive(stream):
    async for key, value in stream.items():
        k = (key or b"").decode()
        table[k] += 1
        await out.send(key=key, value=value)

app.main()
"""


def naive_faust(bootstrap: str, prefix: str, n: int, tmp: Path) -> float:
    from connectors.broker import free_port

    script = tmp / "naive_app.py"
    script.write_text(NAIVE_APP)
    ensure_topics(bootstrap, [prefix + "naive-out"], PARTITIONS)
    cmd = [
        sys.executable,
        str(script),
        prefix,
        bootstrap,
        str(tmp / "naive-data"),
        str(free_port()),
    ]
    with child(cmd, tmp / "naive.log") as proc:
        return n / wait_committed(
            bootstrap, "naive-" + prefix.strip("."), [prefix + t for t in INPUT_TOPICS], n, proc
        )


# ----------------------------------------------------------------------------------- (c), (d)
def our_worker(
    bootstrap: str,
    prefix: str,
    n: int,
    tmp: Path,
    rate: float,
    seconds: float,
    warmup: float,
    linger_ms: int,
) -> tuple[float, list[float]]:
    app_id = f"bench-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, MICROMARKETING_TOPIC_PREFIX=prefix)
    cmd = [
        sys.executable,
        "-m",
        "micromarketing",
        "worker",
        "--rules",
        str(RULES),
        "--app-id",
        app_id,
        "--data-dir",
        str(tmp / "worker"),
        "--broker",
        bootstrap,
        "--no-wall-clock",
    ]
    with child(cmd, tmp / "worker.log", env) as proc:
        eps = n / wait_committed(
            bootstrap, f"{app_id}-inputs", [prefix + t for t in INPUT_TOPICS], n, proc
        )
        lat = latency(bootstrap, prefix, rate, seconds, warmup, linger_ms)
    return eps, lat


def latency(
    bootstrap: str, prefix: str, rate: float, seconds: float, warmup: float, linger_ms: int = 5
) -> list[float]:
    """Produce live events (timestamps = now) at `rate`/s for `warmup` + `seconds`; latency of
    each segment change = its Kafka timestamp (set when our worker produced it) minus its
    event's time. Changes of the warm-up are not counted: the first live event of a partition
    moves its event time months ahead and fires the whole backlog's timers."""
    from streams.engine.events import parse_time

    seconds += warmup
    evs = events(int(rate * seconds), seed=99, start=time.time())
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "lat", "enable.auto.commit": False}
    )
    ends = []
    for p in range(PARTITIONS):
        _, hi = reader.get_watermark_offsets(
            TopicPartition(prefix + SEGMENT_CHANGES, p), timeout=10, cached=False
        )
        ends.append(TopicPartition(prefix + SEGMENT_CHANGES, p, hi))
    reader.assign(ends)
    extra: dict[str, Any] = {"linger.ms": linger_ms}
    producer = BatchProducer(bootstrap, **extra)
    lats: list[float] = []
    t0 = time.time()
    i = 0
    while i < len(evs) or time.time() - t0 < seconds + 3:
        now = time.time()
        due = min(len(evs), int((now - t0) * rate))
        while i < due:
            ev = evs[i]
            ev["timestamp"] = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                + f".{int(now * 1000) % 1000:03d}Z"
            )
            produce_events(producer, [ev], prefix)
            i += 1
        producer.poll()
        for m in reader.consume(1000, timeout=0.005):
            if m.error() is None:
                rec = orjson.loads(m.value() or b"{}")
                _, ts_ms = m.timestamp()
                if rec.get("at") and ts_ms > 0:
                    at = parse_time(rec["at"])
                    if at >= t0 + warmup:  # not the warm-up, nor the backlog's timers
                        lats.append(ts_ms / 1000.0 - at)
        if i >= len(evs) and time.time() - t0 > seconds + 3:
            break
    reader.close()
    return lats


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="seconds of live traffic not counted (the "
        "first live events fire the backlog's timers, then the worker catches up)",
    )
    ap.add_argument(
        "--linger-ms",
        type=int,
        default=5,
        help="linger.ms of the producer of the live events in (d) (the collector's: 5)",
    )
    ap.add_argument("--broker", default=None)
    ap.add_argument("--skip", default="", help="stages to skip, e.g. 'b'")
    a = ap.parse_args()
    n = a.events
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    print(f"engine: {compiled.mode()} (MICROMARKETING_PURE=1 runs the source)", flush=True)
    print(f"generating {n} synthetic events...", flush=True)
    evs = events(n, seed=5)
    with contextlib.ExitStack() as stack:
        bootstrap = (
            a.broker or stack.enter_context(EmbeddedBroker(log_file=tmp / "tansu.log")).bootstrap
        )
        results: dict[str, float] = {}
        for stage in "abc":
            if stage in a.skip:
                continue
            prefix = f"bench{stage}{uuid.uuid4().hex[:4]}."
            load(bootstrap, prefix, evs)
            t = time.monotonic()
            if stage == "a":
                results["a"] = raw_passthrough(bootstrap, prefix, n)
            elif stage == "b":
                results["b"] = naive_faust(bootstrap, prefix, n, tmp)
            else:
                results["c"], lats = our_worker(
                    bootstrap, prefix, n, tmp, a.rate, a.latency_seconds, a.warmup, a.linger_ms
                )
            print(
                f"({stage}) {results[stage]:>10,.0f} events/s   [{time.monotonic() - t:.0f}s wall]",
                flush=True,
            )
        if "a" in results and "c" in results:
            print(f"c/a = {results['c'] / results['a']:.3f}")
        if "b" in results and "c" in results:
            print(f"c/b = {results['c'] / results['b']:.2f}")
        if "c" in results:
            if lats:
                q = statistics.quantiles(lats, n=100)
                print(
                    f"(d) latency event -> segment change at {a.rate:.0f} events/s: "
                    f"p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms "
                    f"({len(lats)} changes, after a {a.warmup:.0f} s warm-up, "
                    f"producer linger {a.linger_ms} ms)"
                )
            else:
                print("(d) no segment change seen")
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
