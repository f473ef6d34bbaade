"""Base names of the Kafka topics the product reads and writes.

They live in the engine because the engine labels its outputs with them and imports nothing
above itself; everything outside the engine takes them from `streams.contract`, which adds the
prefix, the partition count and the rest of the contract."""

from __future__ import annotations

CLICKSTREAM = "clickstream"
PURCHASES = "purchases"
IDENTITIES = "identities"
INPUT_TOPICS: tuple[str, ...] = (CLICKSTREAM, PURCHASES, IDENTITIES)

SEGMENT_CHANGES = "segment-changes"
TRIGGERS_RETARGETING = "triggers.retargeting"
TRIGGERS_WINBACK = "triggers.winback"
SUPPRESSED = "suppressed"
DEAD_LETTERS = "dead-letters"
PROFILES = "profiles"
#: orders attributed to the triggers whose attribution window they fell in (engine/attribution)
CONVERSIONS = "conversions"
DELIVERY_FAILURES = "delivery-failures"
DELIVERIES = "deliveries"  # trigger ids delivered, per deliver group (connectors/deliver/dedupe)
CONTROL = "control"
FORWARDS = "forwards"
OUTPUT_TOPICS: tuple[str, ...] = (
    SEGMENT_CHANGES,
    TRIGGERS_RETARGETING,
    TRIGGERS_WINBACK,
    SUPPRESSED,
    DEAD_LETTERS,
    PROFILES,
    CONVERSIONS,
)
TRIGGER_TOPICS: tuple[str, ...] = (TRIGGERS_RETARGETING, TRIGGERS_WINBACK)
ALL_TOPICS: tuple[str, ...] = (
    *INPUT_TOPICS,
    *OUTPUT_TOPICS,
    DELIVERY_FAILURES,
    DELIVERIES,
    CONTROL,
    FORWARDS,
)


def trigger_topic(kind: str) -> str:
    """Output topic of a trigger of `kind` (retargeting | winback)."""
    return f"triggers.{kind}"
