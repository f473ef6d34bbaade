"""Reading composed YAML nodes with positions: every problem becomes a RuleIssue at its mark.

We read scalars' text, not YAML 1.1's resolved values, where that matters: `on:` stays the key
"on" (not True) and `offer: yes` stays the offer "yes".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from streams.engine.rules import typecheck as T
from streams.engine.rules.durations import DurationError, parse_duration
from streams.engine.rules.expr import Locate
from streams.engine.rules.model import RuleIssue

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
NULL = "tag:yaml.org,2002:null"
MAX_NUMBER_TEXT = 40  # characters of a number

Entries = dict[str, tuple[ScalarNode, Node]]
"""A mapping's entries by key text: (key node, value node)."""


class NodeReader:
    """Validating accessors over the nodes of one file; problems accumulate in `issues`."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.issues: list[RuleIssue] = []
        self._line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def issue(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.issues.append(RuleIssue(self.file, mark.line + 1, mark.column + 1, message))

    def position(self, index: int) -> tuple[int, int]:
        """1-based (line, col) of a character index into the file's text."""
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line + 1, index - self._line_starts[line] + 1

    def mapping(
        self, node: Node, what: str, allowed: Collection[str], required: Collection[str] = ()
    ) -> Entries | None:
        """The entries of a mapping node, reporting non-mappings, bad, duplicate, unknown and
        missing keys. `what` names the mapping in messages, e.g. "trigger 'cart'"."""
        if not isinstance(node, MappingNode):
            self.issue(node, f"{what} must be a mapping of keys to values")
            return None
        out: Entries = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.issue(key, f"keys in {what} must be plain words")
                continue
            name = key.value
            if name in out:
                self.issue(key, f"duplicate key '{name}' in {what}")
            elif name not in allowed:
                hint = T.suggest(name, allowed)
                if not hint:
                    hint = f"; allowed: {', '.join(allowed)}"
                self.issue(key, f"unknown key '{name}' in {what}{hint}")
            else:
                out[name] = (key, value)
        for name in required:
            if name not in out:
                self.issue(node, f"{what} is missing '{name}'")
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        """Items of a list node (an empty value counts as an empty list)."""
        if isinstance(node, ScalarNode) and node.tag == NULL:
            return []
        if not isinstance(node, SequenceNode):
            self.issue(node, f"{what} must be a list")
            return None
        return list(node.value)

    def name(self, node: Node, what: str) -> str | None:
        """A name: a non-empty string (numbers and yes/no must be quoted)."""
        if not isinstance(node, ScalarNode) or node.tag != STR:
            shown = node.value if isinstance(node, ScalarNode) else "this"
            self.issue(node, f'{what} must be a string; quote it, e.g. "{shown}"')
            return None
        if not node.value.strip():
            self.issue(node, f"{what} must not be empty")
            return None
        return str(node.value)

    def text_value(self, node: Node, what: str) -> str | None:
        """A scalar's text as written (so `yes` stays "yes"); must not be empty."""
        if not isinstance(node, ScalarNode):
            self.issue(node, f"{what} must be a single value, not a list or mapping")
            return None
        text = str(node.value).strip()
        if not text:
            self.issue(node, f"{what} must not be empty")
            return None
        return text

    def text_list(self, node: Node, what: str) -> list[str] | None:
        """One value or a list of values (e.g. event names), each as written."""
        if isinstance(node, ScalarNode):
            one = self.text_value(node, what)
            return None if one is None else [one]
        items = self.sequence(node, what)
        if items is None:
            return None
        out = [self.text_value(i, f"each entry of {what}") for i in items]
        if any(o is None for o in out):
            return None
        return [o for o in out if o is not None]

    def duration(self, node: Node, what: str, *, positive: bool = True) -> float | None:
        """Seconds of a duration such as 30m; `positive` refuses zero."""
        text = self.text_value(node, what)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except DurationError as err:
            self.issue(node, f"{what}: {err}")
            return None
        if positive and seconds <= 0:
            self.issue(node, f"{what} must be more than zero")
            return None
        return seconds

    def number(self, node: Node, what: str, *, integer: bool = False) -> float | int | None:
        """A YAML int (or float unless `integer`); booleans and strings are refused."""
        tags = (INT,) if integer else (INT, FLOAT)
        if not isinstance(node, ScalarNode) or node.tag not in tags:
            kind = "a whole number" if integer else "a number"
            self.issue(node, f"{what} must be {kind}")
            return None
        text = str(node.value)
        if len(text) > MAX_NUMBER_TEXT:
            shown = text[:17] + "..."
            self.issue(node, f"{what}: the number {shown} is too long ({len(text)} characters)")
            return None
        value: Any = SafeConstructor().construct_object(node)
        if not math.isfinite(float(value)):
            self.issue(node, f"{what} must be a finite number")
            return None
        return int(value) if integer else float(value)

    def locator(self, node: ScalarNode) -> Locate:
        """Maps offsets in a scalar's value to file positions, also for quoted, folded and
        multi-line scalars (by aligning the value with the raw text)."""
        start, end = node.start_mark.index, node.end_mark.index
        raw, value = self.text[start:end], node.value
        cache: list[int] = []

        def build() -> None:
            p = 0
            for ch in value:
                q = p
                limit = min(len(raw), p + 16)
                while q < limit and raw[q] != ch and not (ch in " \n" and raw[q] in " \t\r\n"):
                    q += 1
                if q < limit:
                    cache.append(q)
                    p = q + 1
                else:
                    cache.append(p)
            cache.append(p)

        def locate(offset: int) -> tuple[int, int]:
            if not cache:
                build()
            return self.position(start + cache[min(max(offset, 0), len(cache) - 1)])

        return locate
