from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable

import orjson
import pytest

from streams.codec import JsonCodec
from streams.engine import jsonbytes
from streams.engine.outputs import Forget, encode_forward
from streams.engine.population import Population
from streams.engine.state import ConsumerState
from tests.unit.engine.helpers import T0

KEPT = 1000


def _held_per_object(make: Callable[[int], bytes]) -> tuple[float, int]:
    """Bytes the allocator holds per object while KEPT results of `make` are kept, and the
    length of one."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(KEPT)]
        gc.collect()  # (what `make` left behind in cycles is not what the bytes hold)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held / KEPT, len(kept[0])


def test_dumps_gives_orjsons_bytes():
    obj = {"consumer_id": "u1", "segment": "road", "at": T0, "n": [1, 2.5, None, True]}
    assert jsonbytes.dumps(obj) == orjson.dumps(obj)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: jsonbytes.dumps({"consumer_id": f"u{i}"}), id="dumps"),
        pytest.param(lambda i: ConsumerState(f"u{i}", T0).to_bytes(), id="state"),
        pytest.param(
            lambda i: JsonCodec().encode("segment-changes", {"consumer_id": f"u{i}"}),
            id="output record",
        ),
        pytest.param(lambda i: encode_forward(Forget(f"u{i}")), id="forward"),
        pytest.param(lambda i: Population().to_bytes(), id="population"),
    ],
)
def test_kept_bytes_hold_about_their_length(make: Callable[[int], bytes]):
    # (orjson.dumps' own bytes hold its write buffer: KiBs for a record of tens of bytes)
    held, length = _held_per_object(make)
    assert held < length + 100


def test_orjsons_own_bytes_are_what_the_module_guards_against():
    held, length = _held_per_object(lambda i: orjson.dumps({"consumer_id": f"u{i}"}))
    if held < length + 100:
        pytest.skip("this orjson returns its bytes at their length: jsonbytes is not needed")
    assert held > 8 * length
