"""`micromarketing deliver --to webhook URL | --to smtp HOST:PORT`.

Environment: `MICROMARKETING_WEBHOOK_SECRET` (webhook secret when --secret is not given),
`MICROMARKETING_DELIVER_BACKOFF_BASE` / `_BACKOFF_CAP` (seconds, default 0.5 / 30),
`MICROMARKETING_DELIVER_TIMEOUT` (seconds per try, default 10 for webhooks, 30 for SMTP),
`MICROMARKETING_SMTP_USERNAME` / `_PASSWORD` / `_STARTTLS=1` (SMTP login).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from connectors.broker import BrokerError, broker_or_embedded, ensure_topics, wait_for_bootstrap
from connectors.deliver.dedupe import DedupeError
from connectors.deliver.loop import Deliverer, DeliverTopics
from connectors.deliver.metrics import DeliverMetrics
from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import Sender
from connectors.deliver.smtp import SmtpSender, parse_hostport
from connectors.deliver.templates import TemplateRenderer
from connectors.deliver.webhook import WebhookSender
from streams.engine.rules.durations import DurationError, parse_duration

log = logging.getLogger(__name__)

SECRET_ENV = "MICROMARKETING_WEBHOOK_SECRET"
_PREFIX = "MICROMARKETING_DELIVER_"


class UsageError(Exception):
    """Bad command line or environment: reported in one line, exit code 2."""


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {raw!r}") from None


def build_sender(args: argparse.Namespace) -> Sender:
    """The sender `--to KIND TARGET` asks for, or UsageError."""
    kind, target = args.to
    if kind == "webhook":
        secret = args.secret or os.environ.get(SECRET_ENV)
        if not secret:
            raise UsageError(
                f"deliver --to webhook needs a signing secret: pass --secret or set {SECRET_ENV}"
            )
        if not target.startswith(("http://", "https://")):
            raise UsageError(f"--to webhook expects an http(s) URL, got {target!r}")
        timeout = _env_float(f"{_PREFIX}TIMEOUT", 10.0)
        return WebhookSender(target, secret, timeout=timeout)
    if kind == "smtp":
        try:
            host, port = parse_hostport(target)
            renderer = TemplateRenderer(args.templates)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return SmtpSender(
            host,
            port,
            sender=args.sender,
            renderer=renderer,
            timeout=_env_float(f"{_PREFIX}TIMEOUT", 30.0),
            username=os.environ.get("MICROMARKETING_SMTP_USERNAME") or None,
            password=os.environ.get("MICROMARKETING_SMTP_PASSWORD") or None,
            starttls=os.environ.get("MICROMARKETING_SMTP_STARTTLS", "") in ("1", "true", "yes"),
        )
    raise UsageError(f"--to KIND must be webhook or smtp, got {kind!r}")


def build_retry(args: argparse.Namespace) -> RetryPolicy:
    """Retry policy from --max-tries and the backoff settings."""
    base = getattr(args, "backoff_base", None)
    cap = getattr(args, "backoff_cap", None)
    try:
        return RetryPolicy(
            max_tries=args.max_tries,
            base=base if base is not None else _env_float(f"{_PREFIX}BACKOFF_BASE", 0.5),
            cap=cap if cap is not None else _env_float(f"{_PREFIX}BACKOFF_CAP", 30.0),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT / SIGTERM set `stop` (the loop ends after the in-flight delivery)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping after the in-flight delivery", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def dedupe_window(args: argparse.Namespace) -> float:
    """Seconds a delivered trigger id is remembered (`--dedupe-window`, default 7d)."""
    text = getattr(args, "dedupe_window", None) or "7d"
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"--dedupe-window: {exc}") from None
    if seconds <= 0:
        raise UsageError("--dedupe-window must be positive")
    return seconds


def group_of(args: argparse.Namespace, kind: str) -> str:
    """The consumer group: `--group`, else one per kind of delivery, so that a webhook deliverer
    and an email deliverer each get every trigger (more deliverers of one kind share them)."""
    return str(args.group) if args.group else f"micromarketing-deliver-{kind}"


def run(args: argparse.Namespace) -> int:
    """Entry point of `micromarketing deliver`; returns the exit code."""
    try:
        sender = build_sender(args)
        retry = build_retry(args)
        window = dedupe_window(args)
    except UsageError as exc:
        print(f"micromarketing deliver: {exc}", file=sys.stderr)
        return 2
    if args.broker:
        try:
            wait_for_bootstrap(args.broker, timeout=10)
        except BrokerError as exc:
            print(f"micromarketing deliver: {exc}", file=sys.stderr)
            return 1
    topics = DeliverTopics.prefixed()
    metrics = DeliverMetrics(sender.name)
    stop = threading.Event()
    with stop_on_signals(stop), broker_or_embedded(args.broker) as bootstrap:
        ensure_topics(
            bootstrap, [*topics.triggers, topics.profiles, topics.failures, topics.deliveries]
        )
        deliverer = Deliverer(
            bootstrap,
            sender,
            group=group_of(args, sender.name),
            topics=topics,
            retry=retry,
            metrics=metrics,
            dedupe_window=window,
        )
        log.info("delivering triggers from %s by %s", bootstrap, sender.name)
        try:
            deliverer.run_until(stop)
        except DedupeError as exc:
            print(f"micromarketing deliver: {exc}", file=sys.stderr)
            return 1
        finally:
            print(metrics.summary(), file=sys.stderr)
    return 0
