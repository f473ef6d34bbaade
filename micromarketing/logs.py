"""Logging as every command sets it up: one line per record, tracebacks only for our bugs."""

from __future__ import annotations

import logging

#: the logger aiohttp's servers (collector, worker web, console) report bad requests on
AIOHTTP_SERVER = "aiohttp.server"


class OneLineBadRequests(logging.Filter):
    """A request aiohttp could not parse (an 8 KB URL, a malformed header) was answered 400;
    its record becomes one WARNING line saying why, instead of an ERROR with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_http_processing_error(exc):
            reason = " ".join(str(getattr(exc, "message", exc)).split())
            if len(reason) > 200:
                reason = reason[:200] + "..."
            record.msg = f"{record.getMessage()}: {getattr(exc, 'code', 400)} {reason}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _is_http_processing_error(exc: BaseException) -> bool:
    # (by name: importing aiohttp would slow every command's start)
    return any(
        c.__name__ == "HttpProcessingError" and c.__module__.startswith("aiohttp")
        for c in type(exc).__mro__
    )


def configure(level: int) -> None:
    """Log to stderr at `level`, bad HTTP requests in one line."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = logging.getLogger(AIOHTTP_SERVER)
    if not any(isinstance(f, OneLineBadRequests) for f in server.filters):
        server.addFilter(OneLineBadRequests())
