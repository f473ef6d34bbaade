"""`micromarketing console --broker B [--port P] [--worker URL] [--token T] [--rules FILE]`.

Prints `console: http://127.0.0.1:PORT/` as its first line of stdout (the demo reads it), then
the token for publishing and dry runs (when it made one up), and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path

from aiohttp import web

from connectors.broker import BrokerError, wait_for_bootstrap
from micromarketing.console.follow import Follower
from micromarketing.console.server import Config, Console
from micromarketing.console.state import ConsoleState, campaign_results
from streams.engine.rules import RulesError, load_rules

DEFAULT_BROKER = "127.0.0.1:9092"
BROKER_ENV = "MICROMARKETING_BROKER"
HOST = "127.0.0.1"


class ConsoleError(RuntimeError):
    """The console cannot start (port in use...); the message says why."""


def _say(text: str) -> None:
    print(f"micromarketing console: {text}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace) -> Config | int:
    bootstrap = args.broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER
    try:
        wait_for_bootstrap(bootstrap, timeout=4)
    except BrokerError as exc:
        _say(f"{exc}; start one with `micromarketing broker` or pass --broker HOST:PORT")
        return 1
    config = Config(bootstrap=bootstrap, token=args.token or secrets.token_urlsafe(18))
    if args.worker:
        if not args.worker.startswith(("http://", "https://")):
            _say(f"--worker must be an http:// URL, got {args.worker!r}")
            return 2
        config.worker = args.worker
    if args.rules:
        try:
            config.rules = load_rules(args.rules)
            config.rules_text = Path(args.rules).read_text(encoding="utf-8")
        except RulesError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            _say(f"{args.rules}: the rules do not load")
            return 1
        except OSError as exc:
            _say(f"{args.rules}: cannot read: {exc.strerror or exc}")
            return 2
        config.rules_path = args.rules
    return config


async def _serve(console: Console, port: int, generated_token: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConsoleError(f"port {port} is in use: choose another with --port") from None
        raise ConsoleError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    runner = web.AppRunner(console.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    print(f"console: http://{HOST}:{sock.getsockname()[1]}/", flush=True)
    if generated_token:
        print(f"console token (publish, dry run): {console.config.token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    """Entry point of `micromarketing console`; the exit code."""
    config = _config(args)
    if isinstance(config, int):
        return config
    state, lock = ConsoleState(campaign_results()), threading.Lock()
    follower = Follower(config.bootstrap, state, lock, config.prefix)
    follower.start()
    try:
        asyncio.run(_serve(Console(config, state, lock, follower), args.port or 0,
                           not args.token))
    except ConsoleError as exc:  # it cannot serve (the port): a runtime failure
        _say(str(exc))
        return 1
    finally:
        follower.stop()
        follower.join(10)
    return 0
