"""A producer whose records are grouped in epochs, each acknowledged as a whole.

The worker commits a batch only when every record the batch produced (outputs, forwards,
changelog) is acknowledged. Waiting for that with `Producer.flush()` would also wait for the
records of the next batch, so the engine would sit idle for a round trip per batch. Here each
record counts against the epoch it was produced in; `seal()` closes the current epoch and returns
a future that resolves once all its records are acknowledged, while the next epoch fills.
Delivery reports are served by one background thread (the only caller of `poll`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.live_io import DeliveryError, producer_config


class Epoch:
    """The records produced between two seals.

    `produced` is written only by the producing (event loop) thread and `delivered` only by the
    delivery thread, so neither loses an update; the epoch is done when it is sealed and both
    are equal.
    """

    __slots__ = ("delivered", "errors", "future", "loop", "offsets", "produced", "sealed", "track")

    def __init__(self, track: frozenset[str]) -> None:
        self.produced = 0
        self.delivered = 0
        self.sealed = False
        self.errors: list[str] = []
        #: highest acknowledged offset per tracked (topic, partition) among this epoch's records
        self.offsets: dict[tuple[str, int], int] = {}
        self.track = track
        self.future: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")
        else:
            topic, partition, off = msg.topic(), msg.partition(), msg.offset()
            if topic in self.track and partition is not None and off is not None:
                tp = (topic, partition)
                if off > self.offsets.get(tp, -1):
                    self.offsets[tp] = off
        self.delivered += 1
        if self.sealed and self.delivered == self.produced:
            self._wake()

    def refused(self, error: str) -> None:
        """A record librdkafka did not accept (producing thread): not produced, and the epoch
        fails. (`list.append` is atomic, so both threads may add errors.)"""
        self.errors.append(error)
        self.produced -= 1

    async def acknowledged(self, timeout: float = 60.0) -> None:
        """Wait until every record of the (sealed) epoch is acknowledged; DeliveryError if one
        failed or the broker did not answer within `timeout` seconds."""
        assert self.future is not None, "seal() the epoch first"
        try:
            await asyncio.wait_for(asyncio.shield(self.future), timeout)
        except TimeoutError:
            raise DeliveryError(
                f"{self.produced - self.delivered} records not acknowledged after {timeout}s"
            ) from None

    def _wake(self) -> None:
        if self.loop is not None and not self.loop.is_closed():  # closed: nobody waits
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        fut = self.future
        if fut is None or fut.done():
            return
        if self.errors:
            fut.set_exception(DeliveryError("; ".join(self.errors[:5])))
        else:
            fut.set_result(None)


class EpochProducer:
    """A confluent producer for the worker: `produce()` queues a record in Python, `push()`
    hands the queue to librdkafka, `seal()` pushes and ends the epoch."""

    def __init__(self, bootstrap: str, *, track: Iterable[str] = (), **extra: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, **extra))
        self._track = frozenset(track)
        self._epoch = Epoch(self._track)
        self._queued: list[tuple[str, bytes | None, str | bytes | None, int]] = []
        self._stop = threading.Event()
        # (not `_thread`: mypyc would name it `__thread`, a C keyword)
        self._reports = threading.Thread(target=self._serve, name="delivery-reports", daemon=True)
        self._reports.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        partition: int | None = None,
    ) -> None:
        """Add one record to the current epoch; it reaches librdkafka on the next `push()`."""
        self._queued.append((topic, value, key, -1 if partition is None else partition))
        self._epoch.produced += 1

    def push(self) -> None:
        """Hand the queued records to librdkafka back to back (waiting while its queue is full).

        Records produced one at a time between engine calls cost 20-50x more each than records
        produced in a run (measured in the worker: 40-120 us against 2-6 us per record); a
        record into an empty partition queue wakes librdkafka's broker thread. A record that
        librdkafka refuses outright counts as a failed delivery of the epoch."""
        queued = self._queued
        if not queued:
            return
        produce = self._producer.produce
        epoch = self._epoch
        on_delivery = epoch.on_delivery
        for topic, value, key, part in queued:
            while True:
                try:
                    produce(topic, value, key, partition=part, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._stop.wait(0.01)  # the delivery thread makes room
                except KafkaException as exc:
                    epoch.refused(f"{topic}: {exc}")
                    break
        queued.clear()

    def seal(self) -> Epoch:
        """End the current epoch and return it; `await epoch.acknowledged()` waits for all its
        records. Must be called on the event loop."""
        self.push()
        epoch, self._epoch = self._epoch, Epoch(self._track)
        loop = asyncio.get_running_loop()
        epoch.loop = loop
        epoch.future = loop.create_future()
        epoch.sealed = True
        if epoch.delivered == epoch.produced:
            epoch._wake()
        return epoch

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the delivery thread."""
        try:
            self.push()
            left = self._producer.flush(timeout)
        finally:
            self._stop.set()
            self._reports.join(1.0)
        if left:
            raise DeliveryError(f"{left} records not delivered after {timeout}s")
