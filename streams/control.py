"""`micromarketing forget ID` (erasure) and rules pushed to the workers over the `control` topic.

An erasure request must reach the worker owning the consumer's partition, so it travels on the
`forwards` topic, keyed by the consumer id, in the engine's own forward format
(`{"op": "forget", "id": ID}`); the owning engine removes the state and sends further forwards
to the partitions of the consumer's aliases. Rules go to every worker on the `control` topic
(`{"type": "rules", "yaml": TEXT}`); each worker reads it whole, outside the consumer group.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

import orjson

from connectors.broker import DEFAULT_PORT, topic_partitions, wait_for_bootstrap
from streams.contract import CONTROL, FORWARDS, partition_of, topic_name
from streams.live_io import BatchProducer

log = logging.getLogger(__name__)


def forget_message(consumer_id: str) -> bytes:
    """The forward payload that makes the owning engine erase `consumer_id`."""
    return orjson.dumps({"op": "forget", "id": consumer_id})


def send_forget(bootstrap: str, consumer_id: str, prefix: str | None = None) -> int:
    """Produce an erasure request to the partition owning `consumer_id`; return the partition."""
    topic = topic_name(FORWARDS, prefix)
    n = topic_partitions(bootstrap, topic)
    if n == 0:
        raise RuntimeError(f"topic {topic} does not exist on {bootstrap}: is a worker running?")
    partition = partition_of(consumer_id, n)
    producer = BatchProducer(bootstrap)
    producer.produce(topic, consumer_id, forget_message(consumer_id), partition=partition)
    producer.flush_blocking(15)
    return partition


def send_rules(bootstrap: str, yaml_text: str, prefix: str | None = None) -> None:
    """Publish a rules file to every worker (hot reload without restart)."""
    producer = BatchProducer(bootstrap)
    value = orjson.dumps({"type": "rules", "yaml": yaml_text})
    producer.produce(topic_name(CONTROL, prefix), "rules", value, partition=0)
    producer.flush_blocking(15)


def _default_broker() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", DEFAULT_PORT), timeout=0.5).close()
    except OSError:
        return None
    return f"127.0.0.1:{DEFAULT_PORT}"


def run(args: argparse.Namespace) -> int:
    """`micromarketing forget CONSUMER_ID [--broker HOST:PORT]`."""
    bootstrap = args.broker or _default_broker()
    if bootstrap is None:
        print(
            "micromarketing forget: no broker: give --broker HOST:PORT (nothing answers on "
            f":{DEFAULT_PORT})",
            file=sys.stderr,
        )
        return 2
    try:
        wait_for_bootstrap(bootstrap, timeout=10)
        partition = send_forget(bootstrap, args.consumer_id)
    except Exception as exc:
        print(f"micromarketing forget: {exc}", file=sys.stderr)
        return 1
    print(
        f"erasure of {args.consumer_id!r} requested (forwards partition {partition}); the "
        "owning worker removes its state and emits segment exits and an empty profile"
    )
    return 0
