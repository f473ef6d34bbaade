"""A local webhook receiver: prints each signed request `deliver --to webhook` sends it.

`python -m connectors.deliver.receiver --port 8099` listens on 127.0.0.1, checks every POST's
`X-Micromarketing-Signature` against the secret (`--secret`, else
`$MICROMARKETING_WEBHOOK_SECRET`), prints one line per request (signature ok or not, the
idempotency key, the body) and answers 200, or 401 to a request whose signature is wrong (a
final answer for `deliver`: the trigger goes to `delivery-failures`, not to retries). It is a
stand-in for the receiving side while trying things out; the checks are those a real receiver
should make.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connectors.deliver.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)

SECRET_ENV = "MICROMARKETING_WEBHOOK_SECRET"
DEFAULT_PORT = 8099
MAX_BODY = 1 << 20


def check(secret: bytes, body: bytes, signature: str | None) -> str:
    """`ok`, or why the request's signature does not hold."""
    if not signature:
        return f"no {SIGNATURE_HEADER} header"
    if not verify(secret, body, signature):
        return "bad signature"
    return "ok"


class Receiver(ThreadingHTTPServer):
    """The HTTP server; `on_request(line)` gets each request's printed line."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        secret: bytes,
        on_request: Callable[[str], None],
        max_requests: int | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.secret = secret
        self.on_request = on_request
        self.max_requests = max_requests
        self.received = 0
        self._lock = threading.Lock()

    def record(self, line: str) -> None:
        """Report one request."""
        with self._lock:
            self.on_request(line)

    def answered(self) -> None:
        """Count one answered request; stop serving after `max_requests`."""
        with self._lock:
            self.received += 1
            if self.max_requests is not None and self.received == self.max_requests:
                threading.Thread(target=self.shutdown, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            self._answer(413, b'{"error": "body too large"}')
            return
        body = self.rfile.read(length)
        verdict = check(self.server.secret, body, self.headers.get(SIGNATURE_HEADER))
        key = self.headers.get(IDEMPOTENCY_HEADER, "-")
        stamp = self.headers.get(TIMESTAMP_HEADER, "-")
        text = body.decode("utf-8", "replace")
        self.server.record(
            f"POST {self.path} signature {verdict} idempotency-key {key} timestamp {stamp} {text}"
        )
        self._answer(200 if verdict == "ok" else 401, b'{"received": true}')
        self.server.answered()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log: `record` prints a better line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.deliver.receiver",
        description="Print the signed webhook requests of `micromarketing deliver`.",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument(
        "--secret", default=None, help=f"the webhook HMAC secret (default: ${SECRET_ENV})"
    )
    parser.add_argument("--max", type=int, default=None, metavar="N", help="exit after N requests")
    return parser


def _say(text: str) -> None:
    print(f"receiver: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted (or `--max` requests); the exit code."""
    args = build_parser().parse_args(argv)
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        _say(f"give the webhook secret: --secret S or ${SECRET_ENV}")
        return 2
    try:
        server = Receiver(
            (args.host, args.port),
            secret.encode(),
            lambda line: print(line, flush=True),
            args.max,
        )
    except OSError as exc:
        _say(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 1
    host, port = server.server_address[:2]
    _say(f"listening on http://{host!s}:{port}/ (signatures checked)")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
