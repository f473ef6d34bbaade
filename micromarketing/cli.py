"""The `micromarketing` command: parses arguments and hands each subcommand to its module.

Modules are imported lazily so that `rules check` or `replay` start fast and never load Kafka.
Every handler is `run(args: argparse.Namespace) -> int` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from micromarketing.demo import args as demo_args

HANDLERS = {
    "rules": "streams.engine.rules.command",
    "replay": "streams.replay",
    "worker": "streams.worker",
    "demo": "micromarketing.demo",
    "broker": "micromarketing.broker_cmd",
    "tail": "connectors.tail",
    "forget": "streams.control",
    "collector": "connectors.collector.server",
    "deliver": "connectors.deliver.command",
    "fit": "streams.fit.command",
}


def _broker_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--broker",
        metavar="HOST:PORT",
        default=None,
        help="Kafka bootstrap server; without it, the embedded broker",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micromarketing", description="Real-time micromarketing engine"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    rules = sub.add_parser("rules", help="work with a rules file")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rules file")
    check.add_argument("file", help="rules YAML file")

    replay = sub.add_parser("replay", help="run the engine in event time over a file or topics")
    replay.add_argument("events", nargs="?", help="events as JSON lines ('-' for stdin)")
    replay.add_argument("--rules", required=True, help="rules YAML file")
    replay.add_argument("--out", required=True, help="output directory")
    replay.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="engine partitions, as many as the input topics have (default 4)",
    )
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--from-topics", action="store_true", help="read the input topics")
    replay.add_argument("--since", help="with --from-topics: ISO-8601 start (inclusive)")
    replay.add_argument("--until", help="with --from-topics: ISO-8601 end (exclusive)")
    replay.add_argument(
        "--close-at",
        metavar="ISO8601",
        help="at the end, advance event time to this instant (fires the timers due by then)",
    )
    _broker_arg(replay)

    worker = sub.add_parser("worker", help="a streaming worker (Faust)")
    worker.add_argument("--rules", required=True, help="rules YAML file")
    worker.add_argument("--app-id", default="micromarketing", help="Faust app id / group")
    worker.add_argument("--data-dir", default=None, help="where RocksDB state lives")
    worker.add_argument("--web-port", type=int, default=None, help="Faust web port")
    worker.add_argument(
        "--wall-clock",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wall-clock time also advances timers",
    )
    worker.add_argument(
        "--linger-ms",
        type=float,
        default=20.0,
        help="how long outputs may wait to be sent in batches (throughput vs latency)",
    )
    _broker_arg(worker)

    demo = sub.add_parser(
        "demo", help="broker, worker, collector, console and a synthetic shop, live"
    )
    demo_args.add_arguments(demo)

    broker = sub.add_parser("broker", help="the embedded broker alone, in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--partitions", type=int, default=None, help="partitions per topic")

    tail = sub.add_parser("tail", help="print a topic as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, default=None, help="stop after N messages")
    tail.add_argument("--timeout", type=float, default=None, help="stop after N idle seconds")
    _broker_arg(tail)

    forget = sub.add_parser("forget", help="erase every trace of a consumer")
    forget.add_argument("consumer_id")
    _broker_arg(forget)

    collector = sub.add_parser("collector", help="Segment-compatible HTTP collector")
    collector.add_argument("--port", type=int, default=8088)
    collector.add_argument("--host", default="127.0.0.1")
    collector.add_argument("--write-key", action="append", default=[], dest="write_keys")
    collector.add_argument(
        "--ack-timeout",
        type=float,
        default=10.0,
        help="seconds a request waits for the broker's acknowledgement before 503 (default 10)",
    )
    collector.add_argument(
        "--read-timeout",
        type=float,
        default=30.0,
        help="seconds to receive a request's headers, and again its body (default 30)",
    )
    collector.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at most; more are answered 503 (default 1000)",
    )
    collector.add_argument(
        "--max-clock-skew",
        default="1d",
        help="refuse events stamped more than this ahead of the server clock (default 1d)",
    )
    _broker_arg(collector)

    deliver = sub.add_parser("deliver", help="deliver triggers by webhook or SMTP")
    deliver.add_argument("--to", nargs=2, metavar=("KIND", "TARGET"), required=True)
    deliver.add_argument("--secret", default=None, help="webhook HMAC secret")
    deliver.add_argument("--templates", default=None, help="email templates folder")
    deliver.add_argument(
        "--group",
        default=None,
        help="consumer group (default: micromarketing-deliver-KIND, so a webhook and an email "
        "deliverer each get every trigger)",
    )
    deliver.add_argument("--max-tries", type=int, default=5)
    deliver.add_argument(
        "--dedupe-window",
        default="7d",
        help="how long a delivered trigger id is remembered and never delivered again (default 7d)",
    )
    deliver.add_argument("--sender", default="offers@micromarketing.local")
    _broker_arg(deliver)

    fit = sub.add_parser("fit", help="fit the customer models (BG/NBD, Gamma-Gamma) to the orders")
    fit.add_argument("events", nargs="?", help="events as JSON lines ('-' for stdin)")
    fit.add_argument("--from-topics", action="store_true", help="read the input topics")
    fit.add_argument("--since", help="with --from-topics: ISO-8601 start (inclusive)")
    fit.add_argument("--until", help="with --from-topics: ISO-8601 end (exclusive)")
    fit.add_argument(
        "--calibration-end",
        required=True,
        metavar="DATE",
        help="last day (UTC) of the orders fitted; T is measured to it",
    )
    fit.add_argument(
        "--holdout-end", metavar="DATE", help="check the predictions on the days after"
    )
    fit.add_argument("--model", choices=("bgnbd", "mbgnbd"), default="bgnbd")
    fit.add_argument("--out", required=True, help="models file to write (YAML)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.add_argument("--broker", metavar="HOST:PORT", help="with --from-topics: Kafka bootstrap")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = HANDLERS[args.command]
    if args.command == "replay" and args.from_topics:
        handler = "streams.replay_topics"
    module = importlib.import_module(handler)
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
