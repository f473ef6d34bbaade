"""Settings of the collector: broker, write keys, request limits, timeouts, the delivery window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.contract import topic_prefix

KB = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Request size limits, as the Segment HTTP Tracking API documents them, and how far ahead
    of the server clock an event time may be (the engine's default `max_clock_skew`)."""

    max_event_bytes: int = 32 * KB
    max_batch_bytes: int = 500 * KB
    max_batch_events: int = 2500
    max_clock_skew: float = 86400.0


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Everything `create_app` needs.

    `write_keys` empty means every request is accepted. `ack_timeout` bounds how long a request
    waits for the broker to acknowledge its events before answering 503 (the client retries).
    `read_timeout` bounds the time to receive a request's headers (from the connection's start
    or its previous response) and, separately, its body (408). At most `max_connections` are
    open at once; more are answered 503 and closed. `producer_options` are extra librdkafka
    settings that override the defaults.
    """

    bootstrap: str
    write_keys: frozenset[str] = frozenset()
    limits: Limits = field(default_factory=Limits)
    ack_timeout: float = 10.0
    read_timeout: float = 30.0
    max_connections: int = 1000
    retry_after: int = 1
    health_timeout: float = 2.0
    producer_options: Mapping[str, Any] = field(default_factory=dict)
    #: put before every topic name (`$MICROMARKETING_TOPIC_PREFIX` by default)
    prefix: str = field(default_factory=topic_prefix)

    def producer_config(self) -> dict[str, Any]:
        """The confluent-kafka Producer configuration."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "partitioner": "murmur2_random",  # Java-compatible, as the stream workers
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 100_000,
            # Give up on a record well after the client stopped waiting for it (it retried).
            "message.timeout.ms": int(max(30.0, 3 * self.ack_timeout) * 1000),
        }
        conf.update(self.producer_options)
        return conf
