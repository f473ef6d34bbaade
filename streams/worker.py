"""`micromarketing worker`: one streaming worker (Faust); start more to share the partitions."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from connectors.broker import (
    DEFAULT_PORT,
    BrokerError,
    EmbeddedBroker,
    ensure_topics,
    topic_partitions,
    wait_for_bootstrap,
)
from streams import compiled
from streams.app import Settings, create_app
from streams.contract import ALL_TOPICS, DEFAULT_PARTITIONS, INPUT_TOPICS, topic_name

log = logging.getLogger(__name__)


@contextlib.contextmanager
def resolve_broker(bootstrap: str | None) -> Iterator[str]:
    """`bootstrap` if given; else a broker on localhost:9092 if one answers; else an embedded
    broker for the lifetime of this process."""
    if bootstrap:
        yield bootstrap
        return
    try:
        socket.create_connection(("127.0.0.1", DEFAULT_PORT), timeout=0.5).close()
    except OSError:
        with EmbeddedBroker() as broker:
            log.info(
                "no broker given or on :%d; embedded broker on %s", DEFAULT_PORT, broker.bootstrap
            )
            yield broker.bootstrap
        return
    yield f"127.0.0.1:{DEFAULT_PORT}"


def prepare_topics(bootstrap: str, prefix: str) -> int:
    """Create our topics if missing; return the partition count of the input topics."""
    ensure_topics(bootstrap, [topic_name(t, prefix) for t in ALL_TOPICS])
    counts = {topic_partitions(bootstrap, topic_name(t, prefix)) for t in INPUT_TOPICS}
    if len(counts) != 1:
        raise SystemExit(f"input topics must be co-partitioned, found partition counts {counts}")
    return counts.pop() or DEFAULT_PARTITIONS


def run(args: argparse.Namespace) -> int:
    """Run one worker in the foreground until SIGINT/SIGTERM."""
    from faust.worker import Worker

    from streams.agents import register
    from streams.engine.rules import RulesError, load_rules
    from streams.runtime import tune_gc

    try:
        load_rules(args.rules)  # refuse a bad file before joining anything
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"micromarketing worker: cannot read the rules file {args.rules}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if args.broker:
        try:
            wait_for_bootstrap(args.broker, timeout=10)
        except BrokerError as exc:
            print(f"micromarketing worker: {exc}", file=sys.stderr)
            return 1
    from streams.web.server import bind, url_of

    try:
        web_socket = bind("127.0.0.1", args.web_port)
    except OSError as exc:
        print(
            f"micromarketing worker: cannot listen on port {args.web_port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    print(f"worker web: {url_of(web_socket)}", flush=True)
    with resolve_broker(args.broker) as bootstrap:
        settings = Settings(
            rules_path=Path(args.rules),
            bootstrap=bootstrap,
            app_id=args.app_id,
            data_dir=Path(args.data_dir) if args.data_dir else None,
            web_port=web_socket.getsockname()[1],
            wall_clock=args.wall_clock,
            linger_ms=args.linger_ms,
        )
        settings.partitions = prepare_topics(bootstrap, settings.prefix)
        app = create_app(settings)
        pipeline = register(app, settings, web_socket)
        log.info(
            "worker %s on %s (topic prefix %r, %d partitions, rules %s, wall clock %s, "
            "engine %s)",
            settings.app_id,
            bootstrap,
            settings.prefix,
            settings.partitions,
            getattr(pipeline.rules, "version", "?"),
            settings.wall_clock,
            compiled.mode(),
        )
        tune_gc()
        worker = Worker(
            app,
            loglevel="DEBUG" if getattr(args, "verbose", False) else "INFO",
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
        finally:
            pipeline.close()
    return int(code or 0)
