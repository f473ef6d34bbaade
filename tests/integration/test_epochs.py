"""The worker's epoch producer against the embedded broker: each sealed epoch resolves once
its own records are acknowledged, with their offsets, while the next epoch fills."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.epochs import EpochProducer
from streams.live_io import DeliveryError

pytestmark = pytest.mark.integration


def test_epochs_resolve_with_their_own_offsets(broker: EmbeddedBroker, unique: str) -> None:
    tracked, other = f"{unique}.changelog", f"{unique}.out"
    ensure_topics(broker.bootstrap, [tracked, other], 2)
    producer = EpochProducer(broker.bootstrap, track=[tracked])

    async def scenario() -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        for i in range(300):
            producer.produce(other, f"k{i}", b"x")
            producer.produce(tracked, f"k{i}", b"state", partition=i % 2)
        first = producer.seal()
        for i in range(100):  # the next epoch fills before the first is awaited
            producer.produce(tracked, f"k{i}", b"state2", partition=1)
        second = producer.seal()
        empty = producer.seal()
        await first.acknowledged()
        await second.acknowledged()
        await asyncio.wait_for(empty.acknowledged(), 5)
        assert (first.produced, second.produced, empty.produced) == (600, 100, 0)
        assert second.delivered == 100 and not first.errors
        return first.offsets, second.offsets

    try:
        first, second = asyncio.run(scenario())
    finally:
        producer.close()
    assert set(first) == {(tracked, 0), (tracked, 1)}  # the untracked topic is not reported
    assert set(second) == {(tracked, 1)}
    assert second[(tracked, 1)] > first[(tracked, 1)]
    # the offset the epoch reports holds its last record (read back, not from ListOffsets,
    # which Tansu under-reports after batched produce)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique})
    consumer.assign([TopicPartition(tracked, 1, second[(tracked, 1)])])
    try:
        msg = None
        for _ in range(50):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                break
    finally:
        consumer.close()
    assert msg is not None and msg.error() is None
    assert (msg.offset(), msg.key(), msg.value()) == (second[(tracked, 1)], b"k99", b"state2")


def test_an_epoch_that_is_never_acknowledged_fails_clearly() -> None:
    # nothing listens there: the record fails after its delivery timeout
    config: dict[str, Any] = {"message.timeout.ms": 500, "log_level": 0}
    producer = EpochProducer("127.0.0.1:1", **config)

    async def scenario() -> None:
        producer.produce("nowhere", "k", b"v")
        await producer.seal().acknowledged(timeout=10)

    try:
        with pytest.raises(DeliveryError, match="nowhere"):
            asyncio.run(scenario())
    finally:
        producer.close(0.5)  # the failed record is settled: nothing is left to deliver


def test_a_record_librdkafka_refuses_fails_its_epoch_only(
    broker: EmbeddedBroker, unique: str
) -> None:
    topic = f"{unique}.out"
    ensure_topics(broker.bootstrap, [topic], 1)
    config: dict[str, Any] = {"message.max.bytes": 10_000}
    producer = EpochProducer(broker.bootstrap, **config)

    async def scenario() -> None:
        producer.produce(topic, "small", b"x")
        producer.produce(topic, "huge", b"x" * 20_000)  # refused by produce() itself
        failing = producer.seal()
        producer.produce(topic, "next", b"y")
        fine = producer.seal()
        with pytest.raises(DeliveryError, match=r"too large|MSG_SIZE"):
            await failing.acknowledged(timeout=10)
        assert (failing.produced, failing.delivered) == (1, 1)
        await fine.acknowledged(timeout=10)

    try:
        asyncio.run(scenario())
    finally:
        producer.close()
