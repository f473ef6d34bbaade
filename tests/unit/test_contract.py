"""The contract, table-driven: the same odd events get the same topic, key, time and dead letter
from every path that handles them (collector, live producer, worker, file replay, topic replay),
and `deliver` reads the triggers the worker writes, with a (mock) Schema Registry configured.

To add a case, add a `Row`; a path that cannot carry it (the collector takes no Avro, a file has
no partitions) says so in `applies`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from rocksdict import Options, Rdict

from connectors.collector.config import CollectorConfig, Limits
from connectors.collector.payload import dead_letter, plan_batch
from connectors.deliver.codec import DecodeError
from connectors.deliver.codec import decode_record as deliver_decode
from connectors.deliver.loop import Deliverer, DeliverTopics, Outcome
from connectors.deliver.sender import Profile, Trigger
from connectors.sources.topics import decode_record as topic_decode
from connectors.tail import resolve_topic
from streams import contract
from streams.contract import (
    CLICKSTREAM,
    DEAD_LETTERS,
    IDENTITIES,
    PURCHASES,
    partition_of,
    record_key,
)
from streams.engine.core import Engine
from streams.engine.events import parse_time
from streams.engine.outputs import Outputs
from streams.engine.rules import RuleSet, load_rules
from streams.epochs import EpochProducer
from streams.flow import Flow, Rec
from streams.live_io import produce_events
from streams.replay import OutputFiles, replay
from streams.replay_topics import Feed
from streams.runtime import Runtime
from streams.tables import TableStore
from tests.conftest import EXAMPLES

PARTITIONS = 4
PREFIX = "c."
T = "2024-05-01T12:00:00.123Z"
TIME = parse_time(T)
RECEIVED = TIME + 5.0
#: a Confluent header naming a schema id no registry has, then garbage
BAD_AVRO = b"\x00\x00\x00\x03\xe7garbage"


@dataclass(frozen=True)
class Row:
    """An odd input and what every path must make of it."""

    name: str
    event: dict[str, Any]
    topic: str
    key: str | None
    reason: str | None = None  # start of the dead letter's reason; None: the event is applied
    avro: bool = False  # the value travels as Confluent Avro (mock registry)
    partition: int | None = None  # put on this partition, not its key's
    #: path -> marks of this row on that path (an expected failure, say)
    marks: dict[str, Any] = field(default_factory=dict)


def track(name: str, **ids: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "timestamp": T, "messageId": f"m-{name}", **ids}


ROWS = [
    Row("track", track("Product Viewed", userId="u-1"), CLICKSTREAM, "u-1"),
    Row(
        "order-updated",
        track("Order Updated", userId="u-2", properties={"order_id": "o-1", "total": 10}),
        PURCHASES,
        "u-2",
    ),
    Row(
        "group",
        {"type": "group", "groupId": "g-1", "userId": "u-3", "timestamp": T},
        IDENTITIES,
        "u-3",
        reason="invalid_value",  # type must be one of ...
    ),
    Row("userId-0", track("Product Viewed", userId=0, anonymousId="anon-0"), CLICKSTREAM, "0"),
    Row(
        "userId-bool",
        track("Product Viewed", userId=True, anonymousId="anon-b"),
        CLICKSTREAM,
        None,
        reason="bad_type",  # userId must be a string, got bool
    ),
    Row("avro", track("Product Viewed", userId="u-avro"), CLICKSTREAM, "u-avro", avro=True),
    Row(
        "wrong-partition",
        track("Product Viewed", userId="u-wrong"),
        CLICKSTREAM,
        "u-wrong",
        partition=(partition_of("u-wrong", PARTITIONS) + 1) % PARTITIONS,
        # the replays route by key; the worker re-routes a record to its key's partition
    ),
]


def rows(path: str) -> list[Any]:
    return [
        pytest.param(r, id=r.name, marks=r.marks.get(path, ())) for r in ROWS if applies(path, r)
    ]


def applies(path: str, row: Row) -> bool:
    """Whether `path` can carry `row` at all."""
    if path in ("collector", "producer", "file"):  # JSON only, partitioned by key
        return not row.avro and row.partition is None
    return True


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A mock Schema Registry, as MICROMARKETING_SCHEMA_REGISTRY would configure one."""
    monkeypatch.setenv(contract.SCHEMA_REGISTRY_ENV, f"mock://contract-{uuid.uuid4().hex[:8]}")
    contract.reset_codec()
    yield
    contract.reset_codec()


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(EXAMPLES / "rules.yaml")


def value_of(row: Row) -> bytes:
    """The input value as a producer writes it."""
    return contract.encode_value(row.topic, row.event) if row.avro else orjson.dumps(row.event)


def where(row: Row) -> tuple[int, int]:
    """(partition, offset) the row's record sits at."""
    key = contract.consumer_key(row.event)
    return (row.partition if row.partition is not None else partition_of(key, PARTITIONS)), 7


# the paths: each says what it observed ---------------------------------------------------------

Observed = dict[str, Any]


def collector(row: Row, rules: RuleSet, tmp: Path) -> Observed:
    plan = plan_batch({"batch": [row.event]}, RECEIVED, Limits())
    if plan.rejected:
        record = dead_letter(plan.rejected[0], RECEIVED)
        assert record.topic == DEAD_LETTERS
        value = contract.decode_value(DEAD_LETTERS, record.value)
        return {"key": _text(record.key), "reason": value["reason"]}
    (record,) = plan.records
    assert record.timestamp_ms is not None
    return {
        "topic": record.topic,
        "key": _text(record.key),
        "time": record.timestamp_ms / 1000,
        "reason": None,
    }


class _Capture:
    def __init__(self) -> None:
        self.records: list[tuple[str, Any, int | None]] = []

    def produce(self, topic: str, key: Any, value: Any, timestamp_ms: int | None = None) -> None:
        self.records.append((topic, key, timestamp_ms))


def producer(row: Row, rules: RuleSet, tmp: Path) -> Observed:
    """`streams.live_io.produce_events` (the demo, the live tests and benches write with it)."""
    capture = _Capture()
    produce_events(capture, [row.event], prefix=PREFIX)  # type: ignore[arg-type]
    ((topic, key, ms),) = capture.records
    assert ms is not None
    return {"topic": topic.removeprefix(PREFIX), "key": _text(key), "time": ms / 1000}


class _Intake:
    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        return []


def make_flow(rules: RuleSet, tmp: Path) -> tuple[Flow, list[Rdict]]:
    runtime = Runtime(rules, PARTITIONS, held=())
    f = Flow(
        _Intake(),
        EpochProducer("127.0.0.1:9"),  # nothing is pushed: no broker needed
        runtime,
        prefix=PREFIX,
        partitions=PARTITIONS,
        inputs=contract.INPUT_TOPICS,
        max_buffered=100,
        batch_max=100,
    )
    dbs = []
    for p in range(PARTITIONS):
        db = Rdict(str(tmp / f"p{p}"), Options(raw_mode=True))
        dbs.append(db)
        store = TableStore(db, p)
        runtime.add(p, Engine(rules, store, partition=p), store.offsets)
    return f, dbs


def close_flow(f: Flow, dbs: list[Rdict]) -> None:
    f.producer._queued.clear()
    f.producer.close(0.1)
    for db in dbs:
        db.close()


def worker_apply(
    f: Flow, row: Row
) -> list[dict[str, Any]]:
    """Apply the row's record as the worker would; return the dead letters it queued."""
    partition, offset = where(row)
    f.apply([Rec(PREFIX + row.topic, partition, offset, TIME, value_of(row))])
    return [
        contract.decode_value(DEAD_LETTERS, value or b"")
        for topic, value, _, _ in f.producer._queued
        if topic == PREFIX + DEAD_LETTERS
    ]


def worker(row: Row, rules: RuleSet, tmp: Path) -> Observed:
    """The live worker's per-record path (`streams.flow.Flow.apply`)."""
    f, dbs = make_flow(rules, tmp)
    try:
        dead = worker_apply(f, row)
        return _engine_observed(row, dead, f.runtime.engines)
    finally:
        close_flow(f, dbs)


def file_replay(row: Row, rules: RuleSet, tmp: Path) -> Observed:
    router = Runtime(rules, PARTITIONS)
    with OutputFiles(tmp / "file") as files:
        replay([("events.jsonl", "1", value_of(row))], router, files)
    dead = _lines(tmp / "file" / "dead_letters.jsonl")
    return _engine_observed(row, dead, router.engines)


def topic_replay_dead_letters(
    row: Row, rules: RuleSet, tmp: Path
) -> tuple[Runtime, list[dict[str, Any]], float]:
    partition, offset = where(row)
    rec = topic_decode(
        PREFIX + row.topic, row.topic, partition, offset, round(RECEIVED * 1000), value_of(row)
    )
    router = Runtime(rules, PARTITIONS)
    with OutputFiles(tmp / "topics") as files:
        replay(Feed(files, None)([rec]), router, files)
    return router, _lines(tmp / "topics" / "dead_letters.jsonl"), rec.key.time


def topic_replay(row: Row, rules: RuleSet, tmp: Path) -> Observed:
    """`replay --from-topics`: the reader's decoding and merge time, then the replay loop."""
    router, dead, sort_time = topic_replay_dead_letters(row, rules, tmp)
    seen = _engine_observed(row, dead, router.engines)
    if seen["reason"] is None:
        assert sort_time == seen["time"]  # merged on the event's own time
    return seen


PATHS: dict[str, Callable[[Row, RuleSet, Path], Observed]] = {
    "collector": collector,
    "producer": producer,
    "worker": worker,
    "file": file_replay,
    "topics": topic_replay,
}


def _engine_observed(row: Row, dead: list[dict[str, Any]], engines: dict[int, Engine]) -> Observed:
    """What an engine-side path did: its dead letter's reason, or where the consumer landed."""
    if dead:
        (letter,) = dead
        return {"reason": letter["reason"]}
    assert row.key is not None
    state = engines[partition_of(row.key, PARTITIONS)].consumer(row.key)
    if state is None:  # applied, but by another partition's engine
        return {"reason": None, "key": "(on the wrong partition)"}
    return {"reason": None, "key": row.key, "time": state.last_seen}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _text(key: Any) -> str | None:
    return key.decode() if isinstance(key, bytes) else key


def expected(row: Row) -> Observed:
    return {"topic": row.topic, "key": row.key, "time": TIME, "reason": row.reason}


def check(observed: Observed, row: Row) -> None:
    want = expected(row)
    if row.reason is not None and observed.get("reason"):
        assert observed["reason"].startswith(row.reason), observed
        observed = {**observed, "reason": row.reason}
    assert observed == {k: want[k] for k in observed}


# the table --------------------------------------------------------------------------------


@pytest.mark.parametrize("row", rows("collector"))
def test_collector(row: Row, rules: RuleSet, tmp_path: Path) -> None:
    check(collector(row, rules, tmp_path), row)


@pytest.mark.parametrize("row", rows("producer"))
def test_live_producer(row: Row, rules: RuleSet, tmp_path: Path) -> None:
    check(producer(row, rules, tmp_path), row)


@pytest.mark.parametrize("row", rows("worker"))
def test_worker(row: Row, rules: RuleSet, tmp_path: Path) -> None:
    check(worker(row, rules, tmp_path), row)


@pytest.mark.parametrize("row", rows("file"))
def test_file_replay(row: Row, rules: RuleSet, tmp_path: Path) -> None:
    check(file_replay(row, rules, tmp_path), row)


@pytest.mark.parametrize("row", rows("topics"))
def test_topic_replay(row: Row, rules: RuleSet, tmp_path: Path) -> None:
    check(topic_replay(row, rules, tmp_path), row)


DEAD_ROWS = [r for r in ROWS if r.reason is not None] + [
    Row("bad-json", {}, CLICKSTREAM, None, reason="invalid_json"),
    Row("undecodable-avro", {}, CLICKSTREAM, None, reason="invalid_json"),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=r.name) for r in DEAD_ROWS])
def test_the_worker_and_the_topic_replay_write_the_same_dead_letter(
    row: Row, rules: RuleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {"bad-json": b"{not json", "undecodable-avro": BAD_AVRO}.get(row.name)
    if raw is not None:
        monkeypatch.setattr(f"{__name__}.value_of", lambda _row: raw)
        monkeypatch.setattr(f"{__name__}.where", lambda _row: (1, 7))
    (tmp_path / "w").mkdir()
    f, dbs = make_flow(rules, tmp_path / "w")
    try:
        live = worker_apply(f, row)
    finally:
        close_flow(f, dbs)
    _, from_topics, _ = topic_replay_dead_letters(row, rules, tmp_path / "t")
    assert len(live) == 1 and live == from_topics
    (letter,) = live
    partition, offset = where(row)
    assert letter["source"] == row.topic
    assert letter["offset"] == f"{row.topic}:{partition}:{offset}"
    assert letter["reason"].startswith(row.reason or "?")
    if raw is not None:
        assert letter["raw"] == raw.decode("utf-8", "replace")


# keys, topics and dead letters in detail ---------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "key"),
    [
        ({"userId": "u"}, "u"),
        ({"userId": 0, "anonymousId": "a"}, "0"),
        ({"userId": 42}, "42"),
        ({"userId": "", "anonymousId": "a"}, "a"),
        ({"userId": None, "anonymousId": 7}, "7"),
        ({"userId": True, "anonymousId": "a"}, None),
        ({"userId": 1.5}, None),
        ({"userId": {"id": 1}}, None),
        ({"userId": "x" * 257}, None),
        ({}, None),
    ],
)
def test_the_key_is_the_engines_consumer_id(event: dict[str, Any], key: str | None) -> None:
    assert contract.consumer_key(event) == key
    assert record_key(event) == (None if key is None else key.encode())


@pytest.mark.parametrize(
    ("event", "topic"),
    [
        ({"type": "identify"}, IDENTITIES),
        ({"type": "alias"}, IDENTITIES),
        ({"type": "group"}, IDENTITIES),
        ({"type": "track", "event": "Order Updated"}, PURCHASES),
        ({"type": "track", "event": "Checkout Started"}, PURCHASES),
        ({"type": "track", "event": "Product Viewed"}, CLICKSTREAM),
        ({"type": "page"}, CLICKSTREAM),
        ({"type": "nonsense"}, CLICKSTREAM),
    ],
)
def test_input_topic(event: dict[str, Any], topic: str) -> None:
    assert contract.input_topic(event) == topic


def test_kafka_timestamps_round_up_so_time_ranges_hold_exactly_their_events() -> None:
    assert contract.timestamp_ms(1.0005) == 1001
    assert contract.timestamp_ms(1.0) == 1000
    assert contract.timestamp_ms(-3.0) == 0
    assert contract.record_timestamp_ms({"receivedAt": "1970-01-01T00:00:01.0005Z"}) == 1001
    assert contract.record_timestamp_ms({"timestamp": "yesterday"}) is None


def test_dead_letter_raw_is_bounded() -> None:
    letter = contract.dead_letter("clickstream", "clickstream:0:1", b"x" * 100_000, "too big")
    assert len(letter["raw"]) < contract.MAX_DEAD_RAW + 60
    tail = f"...(truncated, {100_000 - contract.MAX_DEAD_RAW} more characters)"
    assert letter["raw"].endswith(tail)
    deep: object = 1
    for _ in range(400):
        deep = [deep]
    assert "...(too deep)" in contract.dead_letter("s", None, {"traits": deep}, "too_deep")["raw"]
    assert contract.dead_letter("s", None, {"a": 1}, "r", 0.0)["at"] == "1970-01-01T00:00:00.000Z"


def test_topic_names_take_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.PREFIX_ENV, "t1-")
    assert contract.topic_name("profiles") == "t1-profiles"
    assert contract.topic_name("profiles", "") == "profiles"
    assert contract.input_topic_names() == {"t1-" + t: t for t in contract.INPUT_TOPICS}
    assert resolve_topic("segment-changes") == "t1-segment-changes"  # tail
    assert resolve_topic("t1-segment-changes") == "t1-segment-changes"
    assert DeliverTopics.prefixed().triggers == ("t1-triggers.retargeting", "t1-triggers.winback")
    assert CollectorConfig(bootstrap="b").prefix == "t1-"


# deliver reads what the worker writes --------------------------------------------------------


class _Recorder:
    name = "recorder"
    requires_email = False

    def __init__(self) -> None:
        self.sent: list[Trigger] = []

    def send(self, trigger: Trigger, profile: Profile | None) -> None:
        self.sent.append(trigger)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("avro", [True, False], ids=["avro", "json"])
def test_deliver_takes_the_triggers_the_worker_writes(
    avro: bool, rules: RuleSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not avro:
        monkeypatch.delenv(contract.SCHEMA_REGISTRY_ENV)
        contract.reset_codec()
    trigger = {
        "trigger_id": "t-1",
        "kind": "retargeting",
        "campaign": "cart-abandonment",
        "consumer_id": "0",
        "fired_at": T,
        "due_at": T,
        "offer": "free-shipping",
        "products": ["road-bike-900"],
        "segments": ["road-amateur"],
        "holdout": False,
        "reason": None,
        "attribution_until": T,
        "rules_version": "v1",
    }
    out = Outputs()
    out.triggers.append(trigger)
    f, dbs = make_flow(rules, tmp_path)
    try:
        f.emit(out)
        ((topic, value, key, _),) = f.producer._queued
    finally:
        close_flow(f, dbs)
    assert topic == PREFIX + "triggers.retargeting" and key == "0"
    assert value is not None and contract.is_confluent_avro(value) == avro
    assert deliver_decode(topic, value) == trigger
    sender = _Recorder()
    deliverer = Deliverer("127.0.0.1:9", sender, group="g", failures=None)
    assert deliverer.handle(topic, b"0", value) == Outcome.DELIVERED
    assert sender.sent == [trigger]


def test_deliver_without_a_registry_skips_avro_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(contract.SCHEMA_REGISTRY_ENV)
    contract.reset_codec()
    with pytest.raises(DecodeError, match="no schema registry configured"):
        deliver_decode("t", BAD_AVRO)
    deliverer = Deliverer("127.0.0.1:9", _Recorder(), group="g")
    assert deliverer.handle("t", b"k", BAD_AVRO) == Outcome.SKIPPED
