"""Prometheus metrics of one collector, in a registry of its own (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "CollectorMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics:
    """Requests by path and status, events by topic, rejects, produce latency, inflight."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "collector_requests",
            "HTTP requests by route and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "collector_events_accepted",
            "Events acknowledged by the broker, by topic",
            ["topic"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "collector_rejects",
            "Requests or events refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "collector_produce_latency_seconds",
            "Time from producing a request's events to the broker's last acknowledgement",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "collector_inflight_requests",
            "Requests being handled",
            registry=self.registry,
        )
        self.connections = Gauge(
            "collector_open_connections",
            "Open client connections",
            registry=self.registry,
        )
        self.refused_connections = Gauge(
            "collector_refused_connections",
            "Connections refused (503) since start: over --max-connections",
            registry=self.registry,
        )
        self.producer_queue = Gauge(
            "collector_producer_queue_messages",
            "Records waiting in the producer for the broker's acknowledgement",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
