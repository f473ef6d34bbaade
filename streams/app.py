"""The Faust app of a worker: configuration tuned for the embedded broker (Tansu) and Kafka.

One app per worker process. Faust (aiokafka transport) does group membership, partition
assignment, offset commits and the table's changelog recovery; the hot path is ours
(`streams.agents`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from connectors.broker import free_port
from streams.contract import DEFAULT_PARTITIONS, topic_prefix
from streams.tables import erasable

log = logging.getLogger(__name__)

#: Group session timeout (s). Tansu answers a JoinGroup after about half of it: keep it short.
SESSION_TIMEOUT = 6.0
TABLE_NAME = "state"


@dataclass
class Settings:
    """What a worker needs to know; filled from the command line by `streams.worker`."""

    rules_path: Path
    bootstrap: str
    app_id: str = "micromarketing"
    data_dir: Path | None = None
    web_port: int | None = None
    wall_clock: bool = True
    partitions: int = DEFAULT_PARTITIONS
    prefix: str = field(default_factory=topic_prefix)
    #: Records released (and committed, at most) at once.
    batch_max: int = 5000
    #: Seconds between commits of what was applied (outputs go out as each record is applied).
    commit_interval: float = 0.1
    #: While catching up on a backlog: records and seconds between commits (`streams.checkpoint`;
    #: Faust's own default commit interval is 2.8 s). Each commit writes the keys its batch
    #: changed, so larger batches write fewer: 50,000 against 20,000 is ~5% fewer instructions
    #: per event for the engine and its RocksDB writes, at most ~2 s more replayed after a crash.
    catchup_max: int = 50_000
    catchup_interval: float = 2.5
    #: librdkafka `linger.ms` of the outputs and changelog. At 5 ms (the collector's) a worker
    #: at full speed sends twice the produce requests of 20 ms, and its main thread took about
    #: a tenth more CPU per event (bench/live.py stage c); 20 ms costs <= 15 ms of latency.
    linger_ms: float = 20.0
    #: Seconds the drain loop sleeps when nothing can be applied (idle, or the merge waits).
    poll_interval: float = 0.005
    max_idle: float = 30.0
    max_buffered: int = 300_000
    tick_interval: float = 1.0
    #: Seconds between two rounds of profile snapshots on the `profiles` topic, and the time one
    #: round may take (the consumers left wait for the next round). A snapshot computes every
    #: feature (the customer models' are the dearest): ~0.3 ms each from source, so at most
    #: 1% of the worker's time goes to them, whatever the rate of changed consumers.
    profile_interval: float = 1.0
    profile_budget: float = 0.01
    log_every: float = 10.0


class App(faust.App):
    """A Faust app that runs its `before_stop` hooks first when it stops, while the consumer,
    the tables (RocksDB) and the producer are still up. (Faust's `on_before_shutdown` signal
    comes after the tables are stopped; no rebalance signal is sent on a stop.) Its
    `after_start` hooks run as it starts, before the group is joined and the tables recovered
    (Faust's `app.task`s wait for the recovery)."""

    def __init__(self, id: str, **options: Any) -> None:
        super().__init__(id, **options)
        self.before_stop: list[Callable[[], Awaitable[None]]] = []
        self.after_start: list[Callable[[], Awaitable[None]]] = []

    async def on_start(self) -> None:
        await super().on_start()
        for hook in self.after_start:
            await hook()

    async def on_stop(self) -> None:
        for hook in self.before_stop:
            try:
                await hook()
            except Exception:
                log.exception("stop hook %r failed", hook)
        await super().on_stop()


def create_app(settings: Settings) -> App:
    """A Faust app for `settings`: rocksdict state on local disk, short group timeouts;
    Faust's own web server off (the worker runs `streams.web` on `settings.web_port`)."""
    data_dir = (
        settings.data_dir or Path(tempfile.gettempdir()) / f"micromarketing-{settings.app_id}"
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    web_port = settings.web_port or free_port()
    conf: dict[str, Any] = dict(
        broker=f"kafka://{settings.bootstrap}",
        store="rocksdb://",
        datadir=str(data_dir),
        web_enabled=False,
        web_host="127.0.0.1",
        web_port=web_port,
        # our web server's URL (`streams.web`): Faust's assignor tells every worker which URL
        # owns which partition
        canonical_url=f"http://127.0.0.1:{web_port}",
        web_bind="127.0.0.1",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=1.5,
        broker_request_timeout=max(30.0, SESSION_TIMEOUT),
        broker_rebalance_timeout=30.0,
        broker_commit_every=20_000,
        broker_commit_interval=1.0,
        broker_max_poll_records=5000,
        consumer_max_fetch_size=4 * 1024 * 1024,
        # Tansu's ListOffsets under-reports the end of a partition written in multi-record
        # batches, so a persisted changelog offset can look "beyond the end": not an error here.
        recovery_consistency_check=False,
        stream_wait_empty=False,  # we drop unacked buffered events on revocation
        table_cleanup_interval=3600.0,
        producer_linger_ms=5,
    )
    return App(settings.app_id, **conf)


def state_table(app: faust.App, partitions: int) -> Any:
    """The consumer-state table: raw bytes, one RocksDB per partition, with a changelog."""
    table = app.Table(
        TABLE_NAME,
        default=None,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="consumer state of the engine (str key -> bytes), per input partition",
    )
    store: Any = table.data
    erasable(store.rocksdb_options)  # before Faust opens a partition database
    return table
