"""Webhook signing, status classification and request building."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from connectors.broker import free_port
from connectors.deliver.sender import DeliveryError
from connectors.deliver.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    is_retryable_status,
    parse_retry_after,
    sign,
    verify,
)

SECRET = b"s3cret"
TRIGGER = {"trigger_id": "t-1", "consumer_id": "c-1", "offer": "vip-20", "products": ["p1"]}


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == f"sha256={expected}"
    assert verify(SECRET, body, f"sha256={expected}")
    assert not verify(SECRET, body + b" ", f"sha256={expected}")
    assert not verify(b"other", body, f"sha256={expected}")


def test_request_is_signed_with_timestamp_and_idempotency_key() -> None:
    sender = WebhookSender("http://127.0.0.1:1/hook", "s3cret", clock=lambda: 1_700_000_000.7)
    req = sender.request(TRIGGER)
    body = req.data
    assert isinstance(body, bytes)
    assert orjson.loads(body) == TRIGGER
    headers = {k.lower(): v for k, v in req.header_items()}
    assert verify(SECRET, body, headers[SIGNATURE_HEADER.lower()])
    assert headers[TIMESTAMP_HEADER.lower()] == "1700000000"
    assert headers[IDEMPOTENCY_HEADER.lower()] == "t-1"
    assert headers["content-type"] == "application/json"
    assert req.get_method() == "POST"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False),
     (401, False), (404, False), (410, False), (422, False), (301, False)],
)  # fmt: skip
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_retry_after_in_seconds_only() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None


def test_connection_refused_is_retryable() -> None:
    sender = WebhookSender(f"http://127.0.0.1:{free_port()}/hook", SECRET, timeout=2)
    with pytest.raises(DeliveryError) as info:
        sender.send(TRIGGER, None)
    assert info.value.retryable


@pytest.mark.parametrize(("url", "secret"), [("ftp://x/y", "s"), ("http://x/y", "")])
def test_bad_configuration_is_refused(url: str, secret: str) -> None:
    with pytest.raises(ValueError):
        WebhookSender(url, secret)
