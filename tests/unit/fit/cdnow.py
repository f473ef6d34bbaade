"""The CDNOW sample (tests/data/cdnow_sample.txt) as Segment `Order Completed` events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE = DATA / "cdnow_sample.txt"
SUMMARY = DATA / "cdnow_summary.csv"


def write_events(path: Path) -> int:
    """One order event per line of the sample, at noon UTC of its date; returns the count."""
    lines = []
    for n, row in enumerate(SAMPLE.read_text().splitlines()):
        _, customer, date, cds, value = row.split()
        t = datetime.strptime(date, "%Y%m%d").replace(hour=12, tzinfo=UTC)
        lines.append(
            orjson.dumps(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": f"cdnow-{customer}",
                    "messageId": f"cdnow-{n}",
                    "timestamp": t.isoformat().replace("+00:00", "Z"),
                    "properties": {"order_id": f"o{n}", "revenue": float(value), "cds": int(cds)},
                }
            )
        )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)
