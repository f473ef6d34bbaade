"""The `micromarketing` command: parses arguments and hands each subcommand to its module.

Modules are imported lazily so that `rules check` or `replay` start fast and never load Kafka.
Every handler is `run(args: argparse.Namespace) -> int` (the exit code). Every error a user can
cause is one line on stderr, `micromarketing COMMAND: message`, with exit code 2 for a usage
mistake and 1 for a runtime failure: the parser and the handler in `main` make sure of it for
bad options, ports in use, unreadable files and unreachable brokers.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.metadata
import logging
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

from micromarketing import logs
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
    "console": "micromarketing.console.command",
    "compare": "streams.report.compare",
    "profile": "streams.web.lookup",
}

USAGE = 2
RUNTIME = 1


def fail(command: str, message: str, code: int = RUNTIME) -> int:
    """Say `micromarketing COMMAND: message` on stderr in one line; return the exit `code`."""
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"micromarketing {command}".strip() + f": {text}", file=sys.stderr, flush=True)
    return code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`micromarketing COMMAND: message`), exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("micromarketing").strip()
        fail(command, f"{message} (see `{self.prog} --help`)", USAGE)
        sys.exit(USAGE)


def _version() -> str:
    try:
        return importlib.metadata.version("micromarketing")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _broker_arg(
    p: argparse.ArgumentParser,
    without: str = "the embedded broker",
) -> None:
    p.add_argument(
        "--broker",
        metavar="HOST:PORT",
        default=None,
        help=f"Kafka bootstrap server; without it, {without}",
    )


def _describe_commands(parser: argparse.ArgumentParser) -> None:
    """Give each subcommand's --help page its one-line summary as description, when it has none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                sub = action.choices[choice.dest]
                if sub.description is None and choice.help:
                    sub.description = choice.help[0].upper() + choice.help[1:] + "."
                _describe_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="micromarketing",
        description="Real-time micromarketing engine: Segment events in, segments and "
        "triggers out.",
        epilog="`micromarketing COMMAND --help` explains a command's options; README.md and "
        "docs/contract.md describe the product.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"micromarketing {_version()}")
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
    replay.add_argument(
        "--no-html", action="store_true", help="skip report.html (report.json is always written)"
    )
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
    worker.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="port of the worker's web server (/metrics, /v1/profiles/ID); default: a free one",
    )
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
    broker.add_argument(
        "--port", type=int, default=9092, metavar="N", help="port to listen on (default 9092)"
    )
    broker.add_argument(
        "--partitions", type=int, default=None, metavar="N", help="partitions per topic (default 4)"
    )

    tail = sub.add_parser("tail", help="print a topic as JSON lines")
    tail.add_argument(
        "topic", help="topic base name (segment-changes, triggers.winback, ...) or full name"
    )
    tail.add_argument(
        "--from-beginning", action="store_true", help="print what the topic holds, then follow"
    )
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N messages")
    tail.add_argument(
        "--timeout", type=float, default=None, metavar="N", help="stop after N idle seconds"
    )
    _broker_arg(tail, "$MICROMARKETING_BROKER, else 127.0.0.1:9092")

    forget = sub.add_parser("forget", help="erase every trace of a consumer")
    forget.add_argument("consumer_id", help="the consumer id (userId or anonymousId) to erase")
    _broker_arg(forget, "127.0.0.1:9092 if a broker answers there")

    profile = sub.add_parser(
        "profile", help="one consumer as the rules see it (features, segments, timers)"
    )
    profile.add_argument("consumer_id", help="userId or anonymousId")
    profile.add_argument(
        "--worker",
        metavar="URL",
        default=None,
        help="any worker's web URL (printed at its start as `worker web: URL`; default: "
        "$MICROMARKETING_WORKER)",
    )

    collector = sub.add_parser("collector", help="Segment-compatible HTTP collector")
    collector.add_argument("--port", type=int, default=8088, help="HTTP port (default 8088)")
    collector.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    collector.add_argument(
        "--write-key",
        action="append",
        default=[],
        dest="write_keys",
        metavar="KEY",
        help="accept requests with this write key (repeatable); without any, accept all",
    )
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
    deliver.add_argument(
        "--to",
        nargs=2,
        metavar=("KIND", "TARGET"),
        required=True,
        help="`webhook URL` or `smtp HOST:PORT`",
    )
    deliver.add_argument(
        "--secret",
        default=None,
        help="webhook HMAC secret (default: $MICROMARKETING_WEBHOOK_SECRET)",
    )
    deliver.add_argument("--templates", default=None, help="email templates folder")
    deliver.add_argument(
        "--group",
        default=None,
        help="consumer group (default: micromarketing-deliver-KIND, so a webhook and an email "
        "deliverer each get every trigger)",
    )
    deliver.add_argument(
        "--max-tries",
        type=int,
        default=5,
        help="tries per trigger before it goes to delivery-failures (default 5)",
    )
    deliver.add_argument(
        "--dedupe-window",
        default="7d",
        help="how long a delivered trigger id is remembered and never delivered again (default 7d)",
    )
    deliver.add_argument(
        "--sender",
        default="offers@micromarketing.local",
        help="From: address of the emails (default offers@micromarketing.local)",
    )
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
    fit.add_argument(
        "--model",
        choices=("bgnbd", "mbgnbd"),
        default="bgnbd",
        help="BG/NBD, or the modified BG/NBD where one-day buyers may leave too (default bgnbd)",
    )
    fit.add_argument("--out", required=True, help="models file to write (YAML)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bar")
    fit.add_argument("--broker", metavar="HOST:PORT", help="with --from-topics: Kafka bootstrap")
    console = sub.add_parser("console", help="the operator's web page over a running stack")
    console.add_argument(
        "--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)"
    )
    console.add_argument(
        "--worker", metavar="URL", default=None,
        help="a worker's web address (http://HOST:PORT), for consumer look-ups",
    )
    console.add_argument(
        "--token", default=None,
        help="token needed to publish rules and run dry runs (default: generated and printed)",
    )
    console.add_argument(
        "--rules", metavar="FILE", default=None,
        help="the workers' rules file: the rules in force until rules are published",
    )
    console.add_argument(
        "--broker", metavar="HOST:PORT", default=None,
        help="Kafka bootstrap server (default: $MICROMARKETING_BROKER, else 127.0.0.1:9092)",
    )

    compare = sub.add_parser(
        "compare",
        help="replay one history through two rule sets and report them side by side",
        description="Replay EVENTS through rule sets A and B (into OUT/a and OUT/b, each with "
        "its report.json and report.html) and write OUT/compare.json and OUT/compare.html: "
        "segment sizes, triggers, consumers targeted by one and not the other, and the "
        "would-have-bought-anyway rate per campaign.",
    )
    compare.add_argument("rules_a", metavar="A.yaml", help="the first rules file (A)")
    compare.add_argument("rules_b", metavar="B.yaml", help="the second rules file (B)")
    compare.add_argument("events", metavar="EVENTS.jsonl", help="events as JSON lines (a file)")
    compare.add_argument("--out", required=True, help="output directory")
    compare.add_argument(
        "--partitions", type=int, default=None, help="engine partitions (default 4)"
    )
    compare.add_argument(
        "--close-at",
        metavar="ISO8601",
        help="at the end, advance event time to this instant (fires the timers due by then)",
    )
    compare.add_argument("--no-progress", action="store_true", help="no progress bars")
    compare.add_argument(
        "--no-html", action="store_true", help="skip each side's report.html (compare.html stays)"
    )
    _describe_commands(parser)
    return parser


def _command(args: argparse.Namespace) -> str:
    """The command's name as the user typed it (`replay`, `rules check`)."""
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if isinstance(sub, str) else str(args.command)


def _port_in_use(args: argparse.Namespace) -> str | None:
    """Why this command could not listen on its `--port` / `--web-port`, if it could not."""
    host = getattr(args, "host", None) or "127.0.0.1"
    for option in ("port", "web_port"):
        port = getattr(args, option, None)
        if not isinstance(port, int) or port == 0:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                flag = "--" + option.replace("_", "-")
                if exc.errno == errno.EADDRINUSE:
                    return f"port {port} is in use ({exc.strerror}); pick another with {flag} N"
                return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _is_user_error(exc: BaseException) -> bool:
    """Errors a user causes and a traceback would not help with: files, ports, brokers."""
    if isinstance(exc, OSError):
        return True
    broker = sys.modules.get("connectors.broker")  # loaded only by the commands that talk Kafka
    return broker is not None and isinstance(exc, broker.BrokerError)


def _describe(exc: BaseException) -> str:
    """The message of a user error: `PATH: what` for a file, else the error's own words."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror}" if where else exc.strerror
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # the demo speaks in its own lines and table (its children log to files); its first line
    # is the console's address, so no log line of its own may come before it
    quiet = args.command == "demo"
    logs.configure(logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)
    command = _command(args)
    taken = _port_in_use(args)
    if taken is not None:
        return fail(command, taken, RUNTIME)
    handler = HANDLERS[args.command]
    if args.command == "replay" and args.from_topics:
        handler = "streams.replay_topics"
    try:
        module = importlib.import_module(handler)
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        return fail(command, _describe(exc), RUNTIME)


if __name__ == "__main__":
    sys.exit(main())
