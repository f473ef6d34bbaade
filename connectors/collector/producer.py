"""An asyncio front for confluent-kafka's Producer: await the broker's acknowledgement of records.

A background thread calls `poll()`, which runs the delivery callbacks; each `send()` counts the
reports of its records under a lock and resolves one asyncio future (via
`call_soon_threadsafe`) when the last one arrived, so a request costs one wake-up, not one per
event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.collector.payload import Record

DEFAULT_QUEUE_MESSAGES = 100_000


class Overloaded(Exception):
    """The producer queue is full: the client should retry later (HTTP 429)."""


class DeliveryFailed(Exception):
    """The broker refused or lost at least one record (HTTP 503)."""


class DeliveryTimeout(Exception):
    """The broker did not acknowledge within the delivery window (HTTP 503)."""


class _Pending:
    """Delivery reports of one `send()`, bridged to an asyncio future."""

    __slots__ = ("_delivered", "_errors", "_expected", "_lock", "future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[list[str]] = loop.create_future()
        self._lock = threading.Lock()
        self._delivered = 0
        self._expected: int | None = None
        self._errors: list[str] = []

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        """confluent-kafka delivery callback (runs in the polling thread)."""
        with self._lock:
            self._delivered += 1
            if err is not None:
                self._errors.append(str(err))
            done = self._expected is not None and self._delivered == self._expected
        if done:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self.loop.call_soon_threadsafe(self._resolve)

    def seal(self, expected: int) -> None:
        """All records are produced: `expected` reports will come (runs in the loop thread)."""
        with self._lock:
            self._expected = expected
            done = self._delivered == expected
        if done:
            self._resolve()

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(list(self._errors))


class AsyncProducer:
    """Produce records and await their acknowledgement by the broker."""

    def __init__(self, config: Mapping[str, Any], *, poll_interval: float = 0.05) -> None:
        self._producer = Producer(dict(config))
        self._max_queue = int(config.get("queue.buffering.max.messages", DEFAULT_QUEUE_MESSAGES))
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll_forever, name="collector-producer-poll", daemon=True
        )
        self._closed = False

    def start(self) -> AsyncProducer:
        """Start the thread that serves delivery callbacks."""
        self._thread.start()
        return self

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(self._poll_interval)

    def __len__(self) -> int:
        """Records not yet acknowledged by the broker."""
        return 0 if self._closed else len(self._producer)

    async def send(self, records: Sequence[Record], timeout: float) -> None:
        """Produce `records`; return once the broker acknowledged them all.

        Raises Overloaded when the queue has no room for them (nothing or part of them is
        produced), DeliveryFailed when one was refused and DeliveryTimeout after `timeout` s.
        """
        if not records:
            return
        if self._closed:
            raise DeliveryFailed("producer closed")
        if len(self._producer) + len(records) > self._max_queue:
            raise Overloaded(f"producer queue full ({len(self._producer)} records)")
        pending = _Pending(asyncio.get_running_loop())
        produced = 0
        try:
            for r in records:
                self._producer.produce(
                    r.topic,
                    r.value,
                    r.key,
                    on_delivery=pending.on_delivery,
                    timestamp=r.timestamp_ms or 0,
                )
                produced += 1
        except BufferError as exc:
            raise Overloaded(str(exc)) from None
        finally:
            pending.seal(produced)
        try:
            errors = await asyncio.wait_for(pending.future, timeout)
        except TimeoutError:
            raise DeliveryTimeout(f"no acknowledgement from the broker within {timeout}s") from None
        if errors:
            raise DeliveryFailed(errors[0])

    def check_broker(self, timeout: float) -> dict[str, Any]:
        """Blocking metadata request: reachability, latency and the topics the broker has."""
        started = time.monotonic()
        try:
            md = self._producer.list_topics(timeout=timeout)
        except Exception as exc:  # KafkaException on timeout / transport failure
            return {"reachable": False, "error": str(exc)}
        return {
            "reachable": True,
            "latency_ms": round((time.monotonic() - started) * 1000, 1),
            "brokers": len(md.brokers),
            "topics": sorted(t for t in md.topics if not t.startswith("__")),
        }

    def close(self, flush_timeout: float = 10.0) -> int:
        """Stop polling, flush what is queued (callbacks run here) and close; blocking.

        Returns the number of records still not acknowledged (lost) after `flush_timeout`.
        """
        if self._closed:
            return 0
        self._closed = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        left = self._producer.flush(flush_timeout)
        if left:  # their clients got a 503 and retry: drop them instead of blocking in close()
            self._producer.purge()
            self._producer.flush(0)
        self._producer.close()
        return left
