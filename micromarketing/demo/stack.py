"""The demo's processes: a worker, the collector and the console (children), and its folder.

The temporary folder holds the worker's state and the children's logs; it is removed on every
way out (normal end, Ctrl-C, SIGTERM), after the children have stopped.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connectors.broker import free_port
from micromarketing.processes import child

#: Outputs wait this long to go out in batches: the embedded broker's fetches slow down with the
#: number of stored batches, so few big batches keep a long demo's rate steady (README).
WORKER_LINGER_MS = 200.0
CONSOLE_WAIT = 30.0


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder, removed on the way out whatever the way."""
    path = Path(tempfile.mkdtemp(prefix="micromarketing-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log (shown before the folder holding it goes)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def answers(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def has_console() -> bool:
    """This build has the `micromarketing console` command."""
    from micromarketing.cli import HANDLERS

    return "console" in HANDLERS


@dataclass
class Stack:
    """The running children and their addresses."""

    bootstrap: str
    folder: Path
    worker: subprocess.Popen[bytes]
    worker_url: str
    collector_port: int
    console: subprocess.Popen[bytes] | None = None
    console_port: int | None = None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def console_line(self) -> str:
        """`console: URL` once the console answers, else why not (one line)."""
        if not has_console():
            return "console: not in this build (no `micromarketing console` command)"
        assert self.console is not None and self.console_port is not None
        deadline = time.monotonic() + CONSOLE_WAIT
        while time.monotonic() < deadline:
            if self.console.poll() is not None:
                return f"console: exited with code {self.console.returncode}"
            if answers(self.console_port):
                return f"console: http://127.0.0.1:{self.console_port}/"
            time.sleep(0.1)
        return f"console: no answer on port {self.console_port} after {CONSOLE_WAIT:g} s"


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "micromarketing", *args]


@contextlib.contextmanager
def start(bootstrap: str, rules: Path, folder: Path) -> Iterator[Stack]:
    """Start the worker (event time only), the collector and the console; stop them on exit."""
    web_port = free_port()
    with contextlib.ExitStack() as stack:
        worker = stack.enter_context(
            child(
                _cmd(
                    "worker", "--rules", str(rules), "--broker", bootstrap,
                    "--app-id", f"demo-{uuid.uuid4().hex[:8]}",
                    "--data-dir", str(folder / "worker"),
                    "--web-port", str(web_port),
                    "--no-wall-clock", "--linger-ms", str(WORKER_LINGER_MS),
                ),
                folder / "worker.log",
            )
        )
        collector_port = free_port()
        stack.enter_context(
            child(
                _cmd(
                    "collector", "--broker", bootstrap, "--port", str(collector_port),
                    "--write-key", "demo",
                ),
                folder / "collector.log",
            )
        )
        s = Stack(bootstrap, folder, worker, f"http://127.0.0.1:{web_port}", collector_port)
        if has_console():
            s.console_port = free_port()
            s.console = stack.enter_context(
                child(
                    _cmd(
                        "console", "--broker", bootstrap, "--port", str(s.console_port),
                        "--worker", s.worker_url, "--token", s.token, "--rules", str(rules),
                    ),
                    folder / "console.log",
                )
            )
        yield s
