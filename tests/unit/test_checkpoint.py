"""When the checkpoint commits: at the interval of a live stream, less often while catching up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from streams.agents import CountingCheckpoint
from streams.engine.rules import loads_rules
from streams.epochs import EpochProducer
from streams.runtime import Runtime

HOUR = 3600.0


@pytest.fixture
def producer() -> Iterator[EpochProducer]:
    # (no broker: an epoch with no records is acknowledged at once)
    p = EpochProducer("127.0.0.1:9", log_level=0)
    yield p
    p.close(0.1)


def checkpoint(producer: EpochProducer, **knobs: float) -> CountingCheckpoint:
    runtime = Runtime(loads_rules("segments: []\n", "<test>"), 4)
    settings = {"batch_max": 50, "commit_interval": HOUR, "catchup_max": 200,
                "catchup_interval": HOUR, **knobs}
    return CountingCheckpoint(
        runtime, producer, "changelog", (), intake=None,
        batch_max=int(settings["batch_max"]), commit_interval=settings["commit_interval"],
        catchup_max=int(settings["catchup_max"]), catchup_interval=settings["catchup_interval"],
    )


def test_a_live_stream_commits_at_batch_max_records(producer: EpochProducer) -> None:
    cp = checkpoint(producer)

    async def go() -> list[int]:
        seen = []
        for n in (30, 30, 10):
            cp.applied(n)
            await cp.poll()
            seen.append(cp.commits)
        return seen

    assert asyncio.run(go()) == [0, 1, 1]


def test_a_live_stream_commits_once_commit_interval_has_passed(producer: EpochProducer) -> None:
    cp = checkpoint(producer, commit_interval=0.0)

    async def go() -> int:
        cp.applied(1)
        await cp.poll()
        return cp.commits

    assert asyncio.run(go()) == 1


def test_a_backlog_commits_at_catchup_max_records_not_at_the_live_bounds(
    producer: EpochProducer,
) -> None:
    cp = checkpoint(producer, commit_interval=0.0)

    async def go() -> list[int]:
        seen = []
        for _ in range(5):
            cp.applied(50)  # a full release each time
            await cp.poll(backlog=True)
            seen.append(cp.commits)
        return seen

    assert asyncio.run(go()) == [0, 0, 0, 1, 1]


def test_a_backlog_commits_once_catchup_interval_has_passed(producer: EpochProducer) -> None:
    cp = checkpoint(producer, catchup_interval=0.0)

    async def go() -> int:
        cp.applied(50)
        await cp.poll(backlog=True)
        return cp.commits

    assert asyncio.run(go()) == 1


def test_nothing_applied_commits_nothing(producer: EpochProducer) -> None:
    cp = checkpoint(producer, commit_interval=0.0, catchup_interval=0.0)

    async def go() -> int:
        await cp.poll()
        await cp.poll(backlog=True)
        return cp.commits

    assert asyncio.run(go()) == 0
