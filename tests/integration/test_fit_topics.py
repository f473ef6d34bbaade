"""`micromarketing fit --from-topics` reads the input topics as the file fit reads the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from connectors.broker import EmbeddedBroker
from connectors.sources.topics import event_time
from tests.conftest import EXAMPLES
from tests.integration.test_replay_topics import _micromarketing, _produce, _write_events

pytestmark = pytest.mark.integration


def _example_events() -> list[dict[str, Any]]:
    events = []
    for line in (EXAMPLES / "events.jsonl").read_bytes().splitlines():
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(ev, dict) and event_time(ev) is not None:
            events.append(ev)
    return events


def test_fit_from_topics_equals_the_fit_of_the_same_events_from_a_file(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    prefix = f"fit-{unique}-"
    events = _example_events()
    _produce(broker.bootstrap, prefix, events)
    _write_events(tmp_path / "events.jsonl", events)
    common = ("--calibration-end", "2026-09-30", "--no-progress")
    _micromarketing(
        "fit", "--from-topics", "--since", "2026-01-01T00:00:00Z", "--until",
        "2028-01-01T00:00:00Z", "--broker", broker.bootstrap, "--out",
        str(tmp_path / "topics.yaml"), *common, prefix=prefix,
    )
    _micromarketing(
        "fit", str(tmp_path / "events.jsonl"), "--out", str(tmp_path / "file.yaml"), *common
    )
    from_topics = yaml.safe_load((tmp_path / "topics.yaml").read_text())
    from_file = yaml.safe_load((tmp_path / "file.yaml").read_text())
    assert from_topics["bgnbd"]["customers"] == from_file["bgnbd"]["customers"] > 10
    assert from_topics["bgnbd"] == pytest.approx(from_file["bgnbd"], rel=1e-6)
    assert from_topics["gamma_gamma"] == pytest.approx(from_file["gamma_gamma"], rel=1e-6)
