"""Backoff bounds (exponential, capped, full jitter) and the give-up decision."""

from __future__ import annotations

import random
from typing import Any

import pytest

from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import DeliveryError


def test_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_tries=10, base=0.5, cap=5.0)
    assert [policy.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_delay_is_full_jitter_within_bounds() -> None:
    policy = RetryPolicy(max_tries=10, base=0.1, cap=1.0, rng=random.Random(7))
    for tries in range(1, 8):
        samples = [policy.delay(tries) for _ in range(500)]
        assert all(0.0 <= s <= policy.ceiling(tries) for s in samples)
        # full jitter: spread over the whole range, not clustered at the top
        assert min(samples) < 0.1 * policy.ceiling(tries)
        assert max(samples) > 0.9 * policy.ceiling(tries)


def test_retry_after_raises_the_wait_but_never_beyond_the_cap() -> None:
    policy = RetryPolicy(base=0.01, cap=2.0, rng=random.Random(1))
    assert policy.delay(1, retry_after=1.5) == 1.5
    assert policy.delay(1, retry_after=60) == 2.0


def test_gives_up_at_once_on_permanent_errors() -> None:
    policy = RetryPolicy(max_tries=5)
    assert not policy.should_retry(DeliveryError("HTTP 400", retryable=False), 1)


def test_gives_up_after_max_tries() -> None:
    policy = RetryPolicy(max_tries=3)
    err = DeliveryError("HTTP 503", retryable=True)
    assert [policy.should_retry(err, n) for n in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize("kwargs", [{"max_tries": 0}, {"base": -1.0}, {"cap": -1.0}])
def test_invalid_policy(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
