"""A bound on open connections: a TCP site that answers 503 and closes past `max_connections`.

aiohttp has no such bound, and counting its own connections does not work during a burst:
asyncio creates the protocols of a burst of accepted sockets before any of them is connected.
So each connection is counted from its protocol's creation to `connection_lost`, by a thin
protocol in front of aiohttp's (the extra call per received chunk costs nothing measurable).
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

_REFUSED_BODY = orjson.dumps(
    {"code": "too_many_connections", "message": "too many open connections; retry later"}
)
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSED_BODY)).encode() + b"\r\n\r\n" + _REFUSED_BODY
)


class ConnectionCount:
    """Open connections of one site, and how many were refused."""

    __slots__ = ("limit", "open", "refused")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_connections must be at least 1, got {limit}")
        self.limit = limit
        self.open = 0
        self.refused = 0


class _Refused(asyncio.Protocol):
    """Answers 503 and closes: the connection is over the bound."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSED)
        transport.close()


class _Counted(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol; gives its slot back when the connection ends."""

    __slots__ = ("_count", "_inner")

    def __init__(self, inner: asyncio.Protocol, count: ConnectionCount) -> None:
        self._inner = inner
        self._count = count

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._count.open -= 1
        self._inner.connection_lost(exc)


class BoundedTCPSite(web.TCPSite):
    """A TCPSite with at most `max_connections` open connections at once."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        max_connections: int,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self.connections = ConnectionCount(max_connections)

    def _protocol(self) -> asyncio.Protocol:
        count = self.connections
        if count.open >= count.limit:
            count.refused += 1
            return _Refused()
        server = self._runner.server
        assert server is not None
        count.open += 1
        return _Counted(server(), count)

    async def start(self) -> None:
        """As TCPSite.start, with our protocol factory in front of the runner's server."""
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
