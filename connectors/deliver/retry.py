"""Retry policy: exponential backoff with full jitter, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from connectors.deliver.sender import DeliveryError


@dataclass
class RetryPolicy:
    """`max_tries` tries in all; the wait after try n is uniform in [0, min(cap, base * 2**(n-1))].

    A server's `Retry-After` hint raises the wait up to `cap`, never beyond.
    """

    max_tries: int = 5
    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must not be negative")

    def ceiling(self, tries: int) -> float:
        """Upper bound of the wait after the `tries`-th failed try (1-based)."""
        return min(self.cap, self.base * 2 ** max(0, tries - 1))

    def delay(self, tries: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `tries`-th failed try."""
        wait = self.rng.uniform(0.0, self.ceiling(tries))
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.cap)
        return wait

    def should_retry(self, error: DeliveryError, tries: int) -> bool:
        """Whether to try again after `tries` tries ended with `error`."""
        return error.retryable and tries < self.max_tries
