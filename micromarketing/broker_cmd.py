"""`micromarketing broker`: the embedded broker alone, in the foreground, with our topics."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from connectors.broker import EmbeddedBroker, ensure_topics
from streams.contract import ALL_TOPICS, DEFAULT_PARTITIONS, topic_name


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with EmbeddedBroker(args.port) as broker:
        topics = [topic_name(t) for t in ALL_TOPICS]  # under $MICROMARKETING_TOPIC_PREFIX
        ensure_topics(broker.bootstrap, topics, partitions=args.partitions or DEFAULT_PARTITIONS)
        print(f"broker ready on {broker.bootstrap} (memory storage; Ctrl-C stops)", flush=True)
        while not stop.wait(0.5):
            if not broker.running():
                print("micromarketing broker: the broker exited", file=sys.stderr)
                return 1
    return 0
