"""The state store interface the engine writes through, and its in-memory implementation.

Keys are strings, values bytes: the live shell puts a Faust table on RocksDB behind the same
interface, so every test of the engine also exercises the serialized form.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class Store(Protocol):
    """A key-value store of one partition's state."""

    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def items(self) -> Iterator[tuple[str, bytes]]: ...


class MemoryStore:
    """A dict-backed Store for tests and replay."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)
