"""Kafka's default key partitioner (murmur2), so replay splits consumers exactly as the topics do.

The Java client, aiokafka/Faust and librdkafka's `murmur2_random` all place a keyed record in
`(murmur2(key) & 0x7fffffff) % partitions`.
"""

from __future__ import annotations

from typing import Final

_M: Final = 0x5BD1E995
_M_LO: Final = _M & 0xFFFF
_M_HI: Final = _M >> 16
_MASK: Final = 0xFFFFFFFF


def _mul(x: int) -> int:
    """`(x * _M) & _MASK` for 0 <= x < 2**32, by 16-bit halves: compiled code multiplies as
    machine ints only factors under 2**30, and takes the slow path of Python ints otherwise."""
    lo, hi = x & 0xFFFF, x >> 16
    return (lo * _M_LO + (((lo * _M_HI + hi * _M_LO) & 0xFFFF) << 16)) & _MASK


def murmur2(data: bytes) -> int:
    """32-bit murmur2 with Kafka's seed, as a signed int like Java's."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    tail = length - (length & 3)
    for i in range(0, tail, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = _mul(k)
        k ^= k >> 24
        h = _mul(h) ^ _mul(k)
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = _mul(h)
    h ^= h >> 13
    h = _mul(h)
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions`."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
