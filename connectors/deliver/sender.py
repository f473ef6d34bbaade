"""The `Sender` protocol the delivery loop talks to, and the outcome of one try."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Trigger = dict[str, Any]


@dataclass(frozen=True)
class Profile:
    """What the deliverer knows about a consumer from the `profiles` topic."""

    email: str | None = None
    consented: bool = True


class DeliveryError(Exception):
    """One delivery try failed.

    `retryable` says whether another try may succeed (5xx, 429, timeouts, connection errors);
    `retry_after` is a server's hint in seconds, if it gave one.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Sender(Protocol):
    """Delivers one trigger; raises `DeliveryError` when a try fails."""

    name: str
    requires_email: bool

    def send(self, trigger: Trigger, profile: Profile | None) -> None:
        """Deliver `trigger` once (the loop retries)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
