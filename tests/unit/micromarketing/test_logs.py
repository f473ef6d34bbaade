"""Logging of the commands: a request aiohttp cannot parse is one warning line."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiohttp import web

from micromarketing.logs import AIOHTTP_SERVER, OneLineBadRequests


async def _exchange(request: bytes) -> bytes:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # URL over 8 KB
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",  # header
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ],
)
def test_an_unparsable_request_is_answered_400_and_logged_as_one_warning_line(
    request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server_log = logging.getLogger(AIOHTTP_SERVER)
    server_log.addFilter(one_line := OneLineBadRequests())
    try:
        with caplog.at_level(logging.DEBUG, logger=AIOHTTP_SERVER):
            answer = asyncio.run(_exchange(request_bytes))
    finally:
        server_log.removeFilter(one_line)
    assert answer.split(b" ")[1] == b"400"
    records = [r for r in caplog.records if r.name == AIOHTTP_SERVER]
    assert len(records) == 1
    (record,) = records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "\n" not in record.getMessage() and " 400 " in record.getMessage()


def test_other_records_of_the_server_logger_keep_their_traceback() -> None:
    try:
        raise RuntimeError("a bug of ours")
    except RuntimeError as exc:
        record = logging.LogRecord(AIOHTTP_SERVER, logging.ERROR, __file__, 1, "Error handling",
                                   (), (type(exc), exc, exc.__traceback__))
    assert OneLineBadRequests().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
