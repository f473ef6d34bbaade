"""The delivery loop: trigger topics in, one `Sender` call per trigger, offsets committed after.

An offset is committed only once its trigger was delivered (and recorded on `deliveries`),
skipped on purpose (holdout, consent, no email, malformed, already delivered) or given up (then
it is on `delivery-failures` first). A trigger id already recorded as delivered by this group
is not delivered again (connectors/deliver/dedupe.py).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from connectors.deliver.codec import DecodeError, Decoder, Record, decode_record, encode_record
from connectors.deliver.dedupe import DEFAULT_WINDOW, DedupeError, KafkaDedupe, TriggerDedupe
from connectors.deliver.metrics import DeliverMetrics
from connectors.deliver.profiles import ProfileReader, ProfileView
from connectors.deliver.retry import RetryPolicy
from connectors.deliver.sender import DeliveryError, Sender, Trigger
from streams.contract import DELIVERIES, DELIVERY_FAILURES, PROFILES, TRIGGER_TOPICS, topic_name

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """What became of one trigger record."""

    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"
    ABORTED = "aborted"  # stopped while waiting to retry: not committed, delivered next run


@dataclass(frozen=True)
class DeliverTopics:
    """The topics a deliverer reads and writes (injectable so tests can isolate themselves)."""

    triggers: tuple[str, ...] = TRIGGER_TOPICS
    profiles: str = PROFILES
    failures: str = DELIVERY_FAILURES
    deliveries: str = DELIVERIES

    @classmethod
    def prefixed(cls, prefix: str | None = None) -> DeliverTopics:
        """The topics under `prefix` (default `$MICROMARKETING_TOPIC_PREFIX`)."""
        return cls(
            tuple(topic_name(t, prefix) for t in TRIGGER_TOPICS),
            topic_name(PROFILES, prefix),
            topic_name(DELIVERY_FAILURES, prefix),
            topic_name(DELIVERIES, prefix),
        )


class FailureSink(Protocol):
    """Where given-up triggers go; `publish` returns only once the record is stored."""

    def publish(self, key: str, record: Record) -> None: ...

    def close(self) -> None: ...


class KafkaFailureSink:
    """Produces given-up triggers to the delivery-failures topic and waits for the ack."""

    def __init__(self, bootstrap: str, topic: str, timeout: float = 15.0) -> None:
        self.topic = topic
        self._timeout = timeout
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def publish(self, key: str, record: Record) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(err)

        self._producer.produce(
            self.topic, key=key, value=encode_record(record), on_delivery=on_delivery
        )
        if self._producer.flush(self._timeout) > 0:
            raise KafkaException(f"{self.topic}: not acknowledged within {self._timeout}s")
        if errors:
            raise KafkaException(errors[0])

    def close(self) -> None:
        self._producer.flush(self._timeout)


def utc_now_iso() -> str:
    """Now as an ISO-8601 UTC string with milliseconds, like the engine's outputs."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def failure_record(trigger: Trigger, error: str, tries: int, failed_at: str) -> Record:
    """The record written to delivery-failures: the trigger plus error, tries, failed_at."""
    return {**trigger, "error": error, "tries": tries, "failed_at": failed_at}


class Deliverer:
    """Consumes triggers and delivers each through `sender`, with retries and consent checks.

    `deliver()` and `handle()` work without Kafka (profiles, the failure sink and the dedupe
    store are injectable); `run_until()` runs the consumer loop, with a KafkaDedupe on
    `topics.deliveries` over `dedupe_window` seconds unless `dedupe` was given.
    """

    def __init__(
        self,
        bootstrap: str,
        sender: Sender,
        *,
        group: str,
        topics: DeliverTopics | None = None,
        retry: RetryPolicy | None = None,
        metrics: DeliverMetrics | None = None,
        decode: Decoder = decode_record,
        profiles: ProfileView | None = None,
        failures: FailureSink | None = None,
        dedupe: TriggerDedupe | None = None,
        dedupe_window: float = DEFAULT_WINDOW,
        consumer_config: dict[str, Any] | None = None,
        poll_timeout: float = 0.5,
        catch_up_timeout: float = 10.0,
        clock: Callable[[], str] = utc_now_iso,
    ) -> None:
        self.bootstrap = bootstrap
        self.sender = sender
        self.group = group
        self.topics = topics or DeliverTopics()
        self.retry = retry or RetryPolicy()
        self.metrics = metrics or DeliverMetrics(sender.name)
        self.profiles = profiles if profiles is not None else ProfileView()
        self._decode = decode
        self._failures = failures
        self.dedupe = dedupe
        self._dedupe_window = dedupe_window
        self._consumer_config = consumer_config or {}
        self._poll_timeout = poll_timeout
        self._catch_up_timeout = catch_up_timeout
        self._clock = clock
        self._stop = threading.Event()
        self._refresh: Callable[[], object] = lambda: None
        self._assigned_at: float | None = None
        #: (topic, partition) of the latest assignment (empty before the first)
        self.assigned: list[tuple[str, int]] = []

    # -- one trigger -------------------------------------------------------------------------

    def _skip(self, trigger: Trigger, reason: str) -> Outcome:
        self.metrics.skipped(reason)
        log.debug("skipped trigger %s (%s)", trigger.get("trigger_id"), reason)
        return Outcome.SKIPPED

    def skip_reason(self, trigger: Trigger) -> str | None:
        """Why `trigger` must not be delivered now (profiles as currently known), if at all."""
        if trigger.get("holdout"):
            return "holdout"
        profile = self.profiles.get(str(trigger.get("consumer_id")))
        if profile is not None and not profile.consented:
            return "consent"
        if self.sender.requires_email and (profile is None or not profile.email):
            return "no_email"
        return None

    def deliver(self, trigger: Trigger) -> Outcome:
        """Deliver one decoded trigger, retrying as the policy says; never raises DeliveryError."""
        tries = 0
        while True:
            self._refresh()  # latest consent, also after a backoff wait
            reason = self.skip_reason(trigger)
            if reason is not None:
                return self._skip(trigger, reason)
            profile = self.profiles.get(str(trigger["consumer_id"]))
            tries += 1
            try:
                self.sender.send(trigger, profile)
            except DeliveryError as exc:
                if not self.retry.should_retry(exc, tries):
                    self._give_up(trigger, exc, tries)
                    return Outcome.FAILED
                delay = self.retry.delay(tries, exc.retry_after)
                self.metrics.retried()
                log.info(
                    "trigger %s: try %d failed (%s); retrying in %.2fs",
                    trigger["trigger_id"],
                    tries,
                    exc,
                    delay,
                )
                if self._stop.wait(delay):
                    log.info(
                        "trigger %s: stopping; it will be delivered on the next run",
                        trigger["trigger_id"],
                    )
                    return Outcome.ABORTED
                continue
            self.metrics.delivered()
            log.debug(
                "delivered trigger %s (%s/%s) for %s by %s after %d tries",
                trigger["trigger_id"],
                trigger.get("campaign"),
                trigger.get("offer"),
                trigger["consumer_id"],
                self.sender.name,
                tries,
            )
            return Outcome.DELIVERED

    def _give_up(self, trigger: Trigger, exc: DeliveryError, tries: int) -> None:
        if self._failures is None:
            raise RuntimeError("no failure sink: call run_until() or pass failures=")
        record = failure_record(trigger, str(exc), tries, self._clock())
        self._failures.publish(str(trigger["consumer_id"]), record)
        self.metrics.failed()
        log.warning("gave up on trigger %s after %d tries: %s", trigger["trigger_id"], tries, exc)

    def handle(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int = 0
    ) -> Outcome:
        """Decode and deliver one trigger record of `partition` (malformed ones and ids already
        delivered are skipped and counted); a delivery is recorded before this returns."""
        try:
            if value is None:
                raise DecodeError(f"{topic}: empty record")
            trigger = self._decode(topic, value)
            if not trigger.get("consumer_id") and key:
                trigger["consumer_id"] = key.decode("utf-8", "replace")
            for name in ("trigger_id", "consumer_id"):
                if not isinstance(trigger.get(name), str) or not trigger[name]:
                    raise DecodeError(f"{topic}: trigger without {name}")
        except DecodeError as exc:
            log.warning("skipping malformed trigger: %s", exc)
            self.metrics.skipped("malformed")
            return Outcome.SKIPPED
        trigger_id = trigger["trigger_id"]
        if self.dedupe is not None and self.dedupe.delivered(partition, trigger_id):
            return self._skip(trigger, "duplicate")
        outcome = self.deliver(trigger)
        if outcome is Outcome.DELIVERED and self.dedupe is not None:
            self.dedupe.record(partition, key, trigger_id)
        return outcome

    # -- the loop ----------------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        worst_case_ms = int(self.retry.max_tries * (self.retry.cap + 60.0) * 1000)
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "client.id": f"micromarketing-deliver-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": max(300_000, worst_case_ms),
            **self._consumer_config,
        }
        return Consumer(config)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("deliver: assigned %d partitions", len(partitions))
        if self.dedupe is not None:  # before any trigger of them is handled
            self.dedupe.assign(tp.partition for tp in partitions)
        self.assigned = [(tp.topic, tp.partition) for tp in partitions]
        self._assigned_at = time.monotonic()

    @staticmethod
    def _commit(consumer: Consumer, msg: Message) -> None:
        try:
            consumer.commit(message=msg, asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance: the trigger may come again
            log.warning(
                "commit of %s/%s@%s failed: %s", msg.topic(), msg.partition(), msg.offset(), exc
            )

    def run_until(
        self,
        stop: threading.Event | None = None,
        *,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Deliver until `stop` is set, `max_messages` triggers were handled, or no trigger came
        for `idle_timeout` seconds after the partitions were assigned. Returns triggers handled.

        The in-flight delivery always completes; a trigger waiting for a retry is left
        uncommitted (delivered by the next run).
        """
        if stop is not None:
            self._stop = stop
        with contextlib.ExitStack() as stack:
            reader = ProfileReader(
                self.bootstrap, self.topics.profiles, decode=self._decode, view=self.profiles
            )
            stack.callback(reader.close)
            stack.callback(self.sender.close)
            if self._failures is None:
                sink = KafkaFailureSink(self.bootstrap, self.topics.failures)
                self._failures = sink
                stack.callback(self._drop_failures, sink)
            if self.dedupe is None:
                dedupe = self._kafka_dedupe()
                self.dedupe = dedupe
                stack.callback(self._drop_dedupe, dedupe)
            consumer = self._consumer()
            stack.callback(consumer.close)
            self._refresh = reader.poll
            stack.callback(self._no_refresh)
            reader.catch_up(self._catch_up_timeout, stop=self._stop)
            log.info("deliver: %d profiles known", len(self.profiles))
            consumer.subscribe(list(self.topics.triggers), on_assign=self._on_assign)
            handled = self._consume(consumer, reader, max_messages, idle_timeout)
        return handled

    def _consume(
        self,
        consumer: Consumer,
        reader: ProfileReader,
        max_messages: int | None,
        idle_timeout: float | None,
    ) -> int:
        handled = 0
        last = time.monotonic()
        while not self._stop.is_set():
            reader.poll()  # profiles first, so consent and emails are current
            msg = consumer.poll(self._poll_timeout)
            if msg is None:
                if idle_timeout is not None and self._idle_for(last) > idle_timeout:
                    break
                continue
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("trigger consumer: %s", err)
                continue
            outcome = self.handle(msg.topic() or "", msg.key(), msg.value(), msg.partition() or 0)
            if outcome is Outcome.ABORTED:
                break
            self._commit(consumer, msg)
            handled += 1
            last = time.monotonic()
            if max_messages is not None and handled >= max_messages:
                break
        return handled

    def _kafka_dedupe(self) -> KafkaDedupe:
        dedupe = KafkaDedupe(
            self.bootstrap,
            self.topics.deliveries,
            self.group,
            sink=self.sender.name,
            window=self._dedupe_window,
        )
        needed = max(dedupe.partition_count(t) for t in self.topics.triggers)
        have = dedupe.partition_count()
        if have < needed:
            dedupe.close()
            raise DedupeError(
                f"topic {self.topics.deliveries} has {have} partitions; the trigger topics "
                f"have up to {needed}: create it with as many"
            )
        return dedupe

    def _drop_dedupe(self, dedupe: KafkaDedupe) -> None:
        dedupe.close()
        self.dedupe = None

    def _no_refresh(self) -> None:
        self._refresh = lambda: None

    def _drop_failures(self, sink: KafkaFailureSink) -> None:
        sink.close()
        self._failures = None

    def _idle_for(self, last: float) -> float:
        """Seconds without a trigger since the later of `last` and the assignment (0 before)."""
        if self._assigned_at is None:
            return 0.0
        return time.monotonic() - max(last, self._assigned_at)

    def stop(self) -> None:
        """Ask the loop to stop after the in-flight delivery."""
        self._stop.set()
