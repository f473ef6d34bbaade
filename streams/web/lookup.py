"""`micromarketing profile ID [--worker URL]`: print one consumer as the rules see it, asked of
any worker's web server (it routes the request to the worker that owns the consumer)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

#: where `profile` asks when --worker is not given
WORKER_ENV = "MICROMARKETING_WORKER"
TIMEOUT = 15.0


def fetch(worker: str, consumer_id: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of `GET /v1/profiles/{id}` on `worker`; OSError when it does
    not answer."""
    url = f"{worker.rstrip('/')}/v1/profiles/{quote(consumer_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {"code": "http_error", "message": str(exc)}
        return exc.code, body


def run(args: argparse.Namespace) -> int:
    worker = args.worker or os.environ.get(WORKER_ENV)
    if not worker:
        print(
            "micromarketing profile: give --worker URL (a worker prints `worker web: URL` at "
            f"start), or set {WORKER_ENV}",
            file=sys.stderr,
        )
        return 2
    if not worker.startswith(("http://", "https://")):
        worker = "http://" + worker
    try:
        status, body = fetch(worker, args.consumer_id)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"micromarketing profile: no answer from {worker}: {reason}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"micromarketing profile: {body.get('message', body)}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0
