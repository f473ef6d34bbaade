"""The README's webhook example end to end: `deliver` signs a trigger, the receiver checks it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest
from confluent_kafka import Producer

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.contract import ALL_TOPICS, PREFIX_ENV, topic_name
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_deliver_posts_a_trigger_the_local_receiver_verifies(
    broker: EmbeddedBroker, unique: str
) -> None:
    prefix = f"rcv-{unique}-"
    ensure_topics(broker.bootstrap, [topic_name(t, prefix) for t in ALL_TOPICS])
    env = {**os.environ, PREFIX_ENV: prefix, "MICROMARKETING_WEBHOOK_SECRET": "s3cret"}
    trigger = {
        "trigger_id": f"t-{unique}",
        "kind": "retargeting",
        "campaign": "cart-abandonment",
        "consumer_id": "u1",
        "fired_at": "2026-01-05T10:55:24.995Z",
        "offer": "free-shipping",
        "products": ["p1"],
        "segments": [],
        "holdout": False,
    }
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic_name("triggers.retargeting", prefix), orjson.dumps(trigger), b"u1")
    assert producer.flush(10) == 0
    python = [sys.executable, "-m"]
    with subprocess.Popen(
        [*python, "connectors.deliver.receiver", "--port", "0", "--max", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as receiver:
        assert receiver.stderr is not None and receiver.stdout is not None
        url = receiver.stderr.readline().split()[3] + "hook"
        with subprocess.Popen(
            [*python, "micromarketing", "deliver", "--to", "webhook", url,
             "--broker", broker.bootstrap, "--group", f"g-{unique}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ) as deliver:
            try:
                assert receiver.wait(timeout=90) == 0
            finally:
                deliver.send_signal(signal.SIGTERM)
                _, deliver_err = deliver.communicate(timeout=60)
                receiver.kill()
        printed = receiver.stdout.read()
    assert printed.startswith(f"POST /hook signature ok idempotency-key t-{unique} "), (
        printed + deliver_err
    )
    assert orjson.loads(printed.split(" ", 8)[8]) == trigger
    assert deliver.returncode == 0, deliver_err
