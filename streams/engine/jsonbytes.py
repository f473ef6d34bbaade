"""JSON bytes that may be kept a while: orjson's output, held at its own length.

The bytes object `orjson.dumps` returns keeps its whole write buffer: at least 1-4 KiB, and up
to about eight times the document for longer ones (measured with orjson 3.9 to 3.13: its final
resize runs after the object's size is already set, so it has nothing to do). Kept, that buffer
is what costs: 100,000 records of 70 bytes took ~400 MB, and each new buffer is fresh memory
the process must fault in. A copy at the document's length costs ~0.1 us and hands the buffer
straight back to the allocator, which gives it to the next `dumps` while it is still in cache.

Use `dumps` for what outlives the call: a state staged until its commit (or held by replay's
store), an output queued for the producer or kept in the console's ring of recent outputs.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any) -> bytes:
    """orjson.dumps(obj), at its length."""
    return memoryview(orjson.dumps(obj)).tobytes()
