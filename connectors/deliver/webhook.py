"""Signed webhook delivery: one JSON POST per trigger.

Headers: `X-Micromarketing-Signature: sha256=<hex HMAC-SHA256 of the exact body>`,
`X-Micromarketing-Timestamp` (Unix seconds) and `Idempotency-Key: <trigger_id>`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import Any

import orjson

from connectors.deliver.sender import DeliveryError, Profile, Trigger

SIGNATURE_HEADER = "X-Micromarketing-Signature"
TIMESTAMP_HEADER = "X-Micromarketing-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "micromarketing-deliver/0.1"
RETRYABLE_STATUSES = frozenset({408, 429})


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether `header` is the right signature of `body` (constant-time compare)."""
    return hmac.compare_digest(sign(secret, body), header)


def signed_headers(secret: bytes, body: bytes, trigger_id: str, timestamp: int) -> dict[str, str]:
    """All headers of a webhook request."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, body),
        TIMESTAMP_HEADER: str(timestamp),
        IDEMPOTENCY_HEADER: trigger_id,
    }


def is_retryable_status(status: int) -> bool:
    """5xx, 408 and 429 may succeed later; every other non-2xx is final."""
    return status >= 500 or status in RETRYABLE_STATUSES


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header given in seconds (HTTP dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without body: treat 3xx as a failure."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookSender:
    """POSTs each trigger as JSON to `url`, signed with `secret`."""

    name = "webhook"
    requires_email = False

    def __init__(
        self,
        url: str,
        secret: str | bytes,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self.url = url
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._timeout = timeout
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect())

    def request(self, trigger: Trigger) -> urllib.request.Request:
        """The signed request for `trigger`."""
        body = orjson.dumps(trigger)
        headers = signed_headers(self._secret, body, str(trigger["trigger_id"]), int(self._clock()))
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, trigger: Trigger, profile: Profile | None) -> None:
        req = self.request(trigger)
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                resp.read()
                return
        except urllib.error.HTTPError as exc:
            status, headers = exc.code, exc.headers
            exc.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{self.url}: {reason}", retryable=True) from exc
        raise DeliveryError(
            f"{self.url}: HTTP {status}",
            retryable=is_retryable_status(status),
            retry_after=_retry_after(headers),
        )

    def close(self) -> None:
        """Nothing to release (one connection per request)."""


def _retry_after(headers: Message | None) -> float | None:
    return parse_retry_after(headers.get("Retry-After")) if headers is not None else None
