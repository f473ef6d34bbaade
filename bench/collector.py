"""Collector throughput: concurrent batch clients -> one collector process -> broker acks.

    .venv/bin/python bench/collector.py [--broker HOST:PORT] [--clients 16] [--batch 100]
                                        [--events 200000] [--duration 30]

Starts an embedded broker (unless --broker) and one `micromarketing collector` subprocess, then
drives it over 127.0.0.1 with aiohttp clients posting /v1/batch. Prints accepted events/s (a
request counts once the collector answered 200, i.e. after the broker acknowledged its events),
p50/p99 request latency, the collector's CPU time, and a baseline from the same run: a raw
confluent-kafka producer of the same events from this process (same producer settings).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.broker import broker_or_embedded, ensure_topics, free_port  # noqa: E402
from connectors.collector.config import CollectorConfig  # noqa: E402
from streams.contract import consumer_key, input_topic  # noqa: E402

KEY = "bench-key"
EVENT_MIX = (
    ("track", "Product Viewed", 70),
    ("page", None, 15),
    ("track", "Product Added", 7),
    ("identify", None, 4),
    ("track", "Order Completed", 4),
)


def make_event(rng: random.Random, users: int) -> dict[str, Any]:
    """One realistic Segment event (analytics.js-like size)."""
    etype, name, _ = rng.choices(EVENT_MIX, weights=[w for *_, w in EVENT_MIX])[0]
    event: dict[str, Any] = {
        "type": etype,
        "userId": f"user-{rng.randrange(users)}",
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": "2024-05-01T12:00:00.000Z",
        "context": {
            "ip": "10.1.2.3",
            "locale": "en-US",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64) bench",
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
        },
    }
    if name is not None:
        event["event"] = name
        event["properties"] = {
            "product_id": f"p-{rng.randrange(5000)}",
            "category": rng.choice(["road", "mtb", "gravel", "kids"]),
            "price": round(rng.uniform(10, 3000), 2),
            "quantity": 1,
        }
        if name == "Order Completed":
            event["properties"]["order_id"] = f"o-{rng.getrandbits(40)}"
            event["properties"]["revenue"] = event["properties"]["price"]
    elif etype == "page":
        event["name"] = "Product"
        event["properties"] = {"path": "/p/123", "url": "https://shop.example/p/123"}
    else:
        event["traits"] = {"email": f"u{rng.randrange(users)}@example.com", "country": "FR"}
    return event


def make_batches(count: int, size: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [[make_event(rng, 20_000) for _ in range(size)] for _ in range(count)]


@contextmanager
def collector_process(bootstrap: str) -> Iterator[tuple[str, int]]:
    """A collector subprocess; yields (base URL, pid)."""
    port = free_port()
    cmd = [sys.executable, "-m", "micromarketing", "collector", "--port", str(port)]
    cmd += ["--broker", bootstrap, "--write-key", KEY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"collector did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class DriveResult:
    events: int = 0
    requests: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0


async def drive(
    url: str, bodies: list[bytes], per_batch: int, clients: int, total: int, duration: float
) -> DriveResult:
    """`clients` concurrent loops posting batches until `total` events or `duration` seconds."""
    result = DriveResult()
    auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    started = time.perf_counter()
    deadline = started + duration
    budget = total // per_batch

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal budget
        i = index
        while budget > 0 and time.perf_counter() < deadline:
            budget -= 1
            body = bodies[i % len(bodies)]
            i += clients
            t0 = time.perf_counter()
            async with session.post(f"{url}/v1/batch", data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            if status == 200:
                result.events += per_batch
            else:
                result.errors[status] = result.errors.get(status, 0) + 1
                if status == 429:
                    await asyncio.sleep(0.05)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, n) for n in range(clients)))
    result.elapsed = time.perf_counter() - started
    return result


def baseline(bootstrap: str, batches: list[list[dict[str, Any]]], total: int) -> float:
    """Events/s of a raw confluent producer sending the same events (encode + produce + ack)."""
    conf = CollectorConfig(bootstrap=bootstrap).producer_config()
    producer = Producer(conf)
    acked = 0
    failed = 0

    def on_delivery(err: Any, _msg: Any) -> None:
        nonlocal acked, failed
        if err is None:
            acked += 1
        else:
            failed += 1

    events = [e for b in batches for e in b]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            producer.poll(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    started = time.perf_counter()
    poller.start()
    for n in range(total):
        event = events[n % len(events)]
        key = consumer_key(event)
        value = orjson.dumps(event)
        while True:
            try:
                producer.produce(
                    input_topic(event),
                    value,
                    key.encode() if key else None,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                time.sleep(0.001)
    stop.set()
    poller.join()
    producer.flush(60)
    elapsed = time.perf_counter() - started
    producer.close()
    if failed:
        print(f"baseline: {failed} deliveries failed", file=sys.stderr)
    return acked / elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker", default=None, help="HOST:PORT; default: an embedded broker")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--events", type=int, default=200_000, help="stop after N events")
    parser.add_argument("--duration", type=float, default=30.0, help="stop after N seconds")
    args = parser.parse_args(argv)

    batches = make_batches(200, args.batch)
    bodies = [
        orjson.dumps({"batch": b, "sentAt": "2024-05-01T12:00:01.000Z", "writeKey": KEY})
        for b in batches
    ]
    mean_event = sum(len(b) for b in bodies) / len(bodies) / args.batch
    with broker_or_embedded(args.broker) as bootstrap:
        ensure_topics(bootstrap)
        with collector_process(bootstrap) as (url, pid):
            asyncio.run(drive(url, bodies, args.batch, args.clients, 20 * args.batch, 10))  # warm
            cpu0 = cpu_seconds(pid)
            res = asyncio.run(
                drive(url, bodies, args.batch, args.clients, args.events, args.duration)
            )
            cpu1 = cpu_seconds(pid)
        rate = res.events / res.elapsed
        base = baseline(bootstrap, batches, res.events or args.events)

    print(
        f"collector bench: {args.clients} clients x {args.batch}-event batches, "
        f"~{mean_event:.0f} B/event, {os.cpu_count()} CPUs on this machine"
    )
    print(f"  accepted      {res.events} events in {res.elapsed:.1f} s = {rate:,.0f} events/s")
    print(f"  requests      {res.requests} (non-200: {res.errors or 'none'})")
    print(
        f"  latency       p50 {percentile(res.latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(res.latencies, 0.99) * 1000:.1f} ms"
    )
    if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
        cpu = cpu1 - cpu0
        print(
            f"  collector CPU {cpu:.1f} s ({cpu / res.elapsed:.2f} cores) = "
            f"{res.events / cpu:,.0f} events per CPU-second"
        )
    print(f"  baseline      raw confluent producer, one process: {base:,.0f} events/s")
    print(f"  ratio         collector / baseline = {rate / base:.2f}")
    return 0 if not res.errors else 1


if __name__ == "__main__":
    sys.exit(main())
