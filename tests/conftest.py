"""Shared fixtures: the embedded broker (one per test session) and unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "bike-shop"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Tansu broker for the whole session; tests isolate themselves by unique names."""
    log_file = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log_file) as b:
        yield b


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic names, group ids and app ids."""
    return uuid.uuid4().hex[:10]
