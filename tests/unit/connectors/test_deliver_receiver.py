"""The local webhook receiver checks the signatures `deliver` makes, and says so per request."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import orjson
import pytest

from connectors.deliver.receiver import Receiver, check
from connectors.deliver.sender import DeliveryError
from connectors.deliver.webhook import WebhookSender, sign
from tests.conftest import ROOT

TRIGGER = {"trigger_id": "t-1", "campaign": "cart-abandonment", "consumer_id": "u1"}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, list[str]]]:
    lines: list[str] = []
    server = Receiver(("127.0.0.1", 0), b"s3cret", lines.append)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server, lines
    server.shutdown()
    thread.join()
    server.server_close()


def _url(server: Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def test_a_request_signed_with_the_secret_is_accepted_and_printed(receiver):
    server, lines = receiver
    WebhookSender(_url(server), "s3cret").send(TRIGGER, None)
    assert len(lines) == 1
    assert lines[0].startswith("POST /hook signature ok idempotency-key t-1 ")
    assert lines[0].endswith(orjson.dumps(TRIGGER).decode())


def test_a_request_signed_with_another_secret_is_refused_for_good(receiver):
    server, lines = receiver
    with pytest.raises(DeliveryError) as caught:
        WebhookSender(_url(server), "wrong").send(TRIGGER, None)
    assert "HTTP 401" in str(caught.value)
    assert not caught.value.retryable
    assert "signature bad signature" in lines[0]


def test_check_names_what_is_wrong_with_a_signature():
    body = b'{"a": 1}'
    assert check(b"k", body, sign(b"k", body)) == "ok"
    assert check(b"k", body, None) == "no X-Micromarketing-Signature header"
    assert check(b"k", body + b" ", sign(b"k", body)) == "bad signature"


def test_the_command_without_a_secret_says_how_to_give_one():
    res = subprocess.run(
        [sys.executable, "-m", "connectors.deliver.receiver", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "receiver: give the webhook secret: --secret S or $MICROMARKETING_WEBHOOK_SECRET"
    )


def test_the_command_prints_each_request_and_exits_after_max(tmp_path):
    with subprocess.Popen(
        [sys.executable, "-m", "connectors.deliver.receiver", "--port", "0", "--max", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MICROMARKETING_WEBHOOK_SECRET": "s3cret"},
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        try:
            banner = proc.stderr.readline()
            assert banner.startswith("receiver: listening on http://127.0.0.1:")
            url = banner.split()[3] + "hook"
            WebhookSender(url, "s3cret").send(TRIGGER, None)
            assert proc.wait(timeout=10) == 0
            assert proc.stdout.read().startswith("POST /hook signature ok idempotency-key t-1 ")
        finally:
            proc.kill()
