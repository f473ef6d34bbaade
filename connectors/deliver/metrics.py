"""Prometheus counters of the deliverer, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

SKIP_REASONS = ("holdout", "consent", "no_email", "malformed", "duplicate")


class DeliverMetrics:
    """delivered / skipped{reason} / failed / retries counters, labelled by sink."""

    def __init__(self, sink: str, registry: CollectorRegistry | None = None) -> None:
        self.sink = sink
        self.registry = registry if registry is not None else CollectorRegistry()
        self._delivered = Counter(
            "micromarketing_deliver_delivered",
            "Triggers delivered",
            ["sink"],
            registry=self.registry,
        )
        self._skipped = Counter(
            "micromarketing_deliver_skipped",
            "Triggers not delivered on purpose",
            ["sink", "reason"],
            registry=self.registry,
        )
        self._failed = Counter(
            "micromarketing_deliver_failed",
            "Triggers given up on (sent to delivery-failures)",
            ["sink"],
            registry=self.registry,
        )
        self._retries = Counter(
            "micromarketing_deliver_retries",
            "Delivery tries repeated after a retryable failure",
            ["sink"],
            registry=self.registry,
        )
        for reason in SKIP_REASONS:
            self._skipped.labels(sink, reason)

    def delivered(self) -> None:
        self._delivered.labels(self.sink).inc()

    def skipped(self, reason: str) -> None:
        self._skipped.labels(self.sink, reason).inc()

    def failed(self) -> None:
        self._failed.labels(self.sink).inc()

    def retried(self) -> None:
        self._retries.labels(self.sink).inc()

    def _value(self, name: str, **labels: str) -> int:
        value = self.registry.get_sample_value(f"{name}_total", {"sink": self.sink, **labels})
        return int(value or 0)

    def snapshot(self) -> dict[str, int]:
        """Current counts: delivered, failed, retries and skipped_<reason>."""
        out = {
            "delivered": self._value("micromarketing_deliver_delivered"),
            "failed": self._value("micromarketing_deliver_failed"),
            "retries": self._value("micromarketing_deliver_retries"),
        }
        for reason in SKIP_REASONS:
            out[f"skipped_{reason}"] = self._value("micromarketing_deliver_skipped", reason=reason)
        return out

    def summary(self) -> str:
        """One line for the shutdown log."""
        s = self.snapshot()
        skipped = ", ".join(f"{r}={s[f'skipped_{r}']}" for r in SKIP_REASONS)
        return (
            f"deliver[{self.sink}]: delivered={s['delivered']} failed={s['failed']} "
            f"retries={s['retries']} skipped({skipped})"
        )
