"""`micromarketing tail TOPIC`: print any of our topics as JSON lines on stdout.

The consumer joins no group (it assigns all partitions itself, with a random group id and no
commits), so it starts at once and never disturbs the workers. Values may be JSON or Confluent
Avro: the Schema Registry comes from `args.schema_registry` or `MICROMARKETING_SCHEMA_REGISTRY`.
TOPIC is a base name (`segment-changes`) put under `MICROMARKETING_TOPIC_PREFIX`, or a full name.

Without `--from-beginning` it prints what arrives after it started. Tansu reports wrong end
offsets after batched produce, so "latest" is not the end offset: each partition starts at the
offset of the first message stamped at or after the start time (offsets-for-times, else the
beginning), and messages stamped earlier are skipped until the partition has caught up.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any, BinaryIO

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors.broker import BrokerError, wait_for_bootstrap
from streams.contract import (
    ALL_TOPICS,
    Codec,
    CodecError,
    make_codec,
    schema_registry_url,
    topic_name,
    topic_prefix,
)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
BROKER_ENV = "MICROMARKETING_BROKER"
CONNECT_TIMEOUT = 4.0
OUR_TOPIC_WAIT = 10.0
BATCH = 500


class TailError(RuntimeError):
    """The topic cannot be tailed (no broker, no such topic); the message says why."""


def _say(text: str) -> None:
    print(f"micromarketing tail: {text}", file=sys.stderr, flush=True)


def check_reachable(bootstrap: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise TailError unless one of the HOST:PORT of `bootstrap` accepts TCP within `timeout`."""
    try:
        wait_for_bootstrap(bootstrap, timeout)
    except BrokerError as exc:
        raise TailError(
            f"{exc}; start one with `micromarketing broker` or pass --broker HOST:PORT "
            f"(or set {BROKER_ENV})"
        ) from None


def consumer_config(bootstrap: str, from_beginning: bool, verbose: bool = False) -> dict[str, Any]:
    """librdkafka settings of the tail consumer: private group, no commits."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"micromarketing-tail-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "session.timeout.ms": 6000,
        "allow.auto.create.topics": False,
        "enable.partition.eof": False,
    }
    if not verbose:
        conf["log_level"] = 0  # librdkafka's connection chatter would drown the JSON lines
    return conf


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    """The partitions of `topic`. One of our topics may be on its way (a broker or a worker
    started just before creates them), so it is awaited for OUR_TOPIC_WAIT seconds."""
    ours = topic in {topic_name(base) for base in ALL_TOPICS}
    deadline = time.monotonic() + (OUR_TOPIC_WAIT if ours else 0.0)
    while True:
        try:
            md = consumer.list_topics(topic, timeout=CONNECT_TIMEOUT + 1)
        except KafkaException as exc:
            raise TailError(f"broker does not answer metadata requests: {exc}") from None
        meta = md.topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        if time.monotonic() >= deadline:
            raise TailError(f"topic {topic!r} does not exist{_did_you_mean(consumer, topic)}")
        time.sleep(0.5)


def near_miss(topic: str, known: Iterable[str]) -> str | None:
    """The name in `known` that `topic` most likely meant (a typo, a missing prefix), if any."""
    names = sorted(set(known) - {topic})
    lowered = {name.lower(): name for name in names}
    if topic.lower() in lowered and lowered[topic.lower()] != topic:
        return lowered[topic.lower()]
    found = difflib.get_close_matches(topic, names, n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(consumer: Consumer, topic: str) -> str:
    """`; did you mean 'X'?` with the nearest topic on the broker or of our contract, or ''."""
    known = {topic_name(base) for base in ALL_TOPICS}
    if topic in known:
        return " yet (a worker or `micromarketing broker` creates our topics when it starts)"
    with contextlib.suppress(KafkaException):
        known.update(consumer.list_topics(timeout=CONNECT_TIMEOUT).topics)
    known = {name for name in known if not name.startswith("__")}  # Kafka's internal topics
    guess = near_miss(topic, known)
    if guess is None:
        return ""
    prefix = topic_prefix()
    shown = guess.removeprefix(prefix) if prefix and topic.startswith(prefix) else guess
    return f"; did you mean {shown!r}?"


def _start_offsets(
    consumer: Consumer, topic: str, partitions: list[int], start_ms: int | None
) -> list[TopicPartition]:
    """Where each partition starts: the beginning, or the first message at/after `start_ms`."""
    if start_ms is None:
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    query = [TopicPartition(topic, p, start_ms) for p in partitions]
    try:
        found = consumer.offsets_for_times(query, timeout=CONNECT_TIMEOUT)
    except KafkaException:
        found = []
    by_partition = {tp.partition: tp.offset for tp in found if tp.error is None}
    return [
        TopicPartition(topic, p, o if (o := by_partition.get(p, -1)) >= 0 else OFFSET_BEGINNING)
        for p in partitions
    ]


class _Printer:
    """Decodes values and writes them as JSON lines, flushing each."""

    def __init__(self, codec: Codec, out: BinaryIO) -> None:
        self.codec = codec
        self.out = out

    def __call__(self, msg: Message) -> bool:
        value = msg.value()
        if value is None:  # tombstone
            return False
        topic = msg.topic() or ""
        try:
            obj = self.codec.decode(topic, value)
        except CodecError as exc:
            _say(f"skipping {topic}[{msg.partition()}]@{msg.offset()}: {exc}")
            return False
        self.out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
        self.out.flush()
        return True


def tail(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    schema_registry: str | None = None,
    out: BinaryIO | None = None,
    verbose: bool = False,
) -> int:
    """Print `topic` as JSON lines to `out`; return how many records were printed."""
    start_ms = None if from_beginning else int(time.time() * 1000)
    check_reachable(bootstrap)
    printer = _Printer(make_codec(schema_registry), out or sys.stdout.buffer)
    consumer = Consumer(consumer_config(bootstrap, from_beginning, verbose))
    printed = 0
    try:
        partitions = _partitions(consumer, topic)
        consumer.assign(_start_offsets(consumer, topic, partitions, start_ms))
        where = "from the beginning" if from_beginning else "from now"
        _say(f"tailing {topic} ({len(partitions)} partitions) {where}")
        caught_up: set[int] = set()
        last = time.monotonic()
        while max_messages is None or printed < max_messages:
            wait = 1.0
            if idle_timeout is not None:
                wait = min(wait, max(0.0, last + idle_timeout - time.monotonic()))
            for msg in consumer.consume(BATCH, timeout=wait):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        _say(f"consumer error: {err}")
                        if err.fatal():
                            raise TailError(str(err))
                    continue
                part = msg.partition() or 0
                if start_ms is not None and part not in caught_up:
                    kind, stamp = msg.timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE and stamp < start_ms:
                        continue
                    caught_up.add(part)
                if printer(msg):
                    printed += 1
                    last = time.monotonic()
                    if max_messages is not None and printed >= max_messages:
                        break
            if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                break
    finally:
        consumer.close()
    return printed


def resolve_topic(topic: str) -> str:
    """`topic` under `$MICROMARKETING_TOPIC_PREFIX`, unless it is already the full name."""
    prefix = topic_prefix()
    return topic if topic.startswith(prefix) else prefix + topic


def run(args: argparse.Namespace) -> int:
    """Entry point of `micromarketing tail`; exit code 0, 1 on a tail error, 2 on bad usage."""
    bootstrap = args.broker or os.environ.get(BROKER_ENV) or DEFAULT_BOOTSTRAP
    registry = schema_registry_url(getattr(args, "schema_registry", None))
    if args.max is not None and args.max < 1:
        _say("--max must be at least 1")
        return 2
    try:
        tail(
            bootstrap,
            resolve_topic(args.topic),
            from_beginning=args.from_beginning,
            max_messages=args.max,
            idle_timeout=args.timeout,
            schema_registry=registry,
            verbose=bool(getattr(args, "verbose", False)),
        )
    except TailError as exc:
        _say(str(exc))
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `tail ... | head`
        with contextlib.suppress(OSError):  # silence the flush of stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
