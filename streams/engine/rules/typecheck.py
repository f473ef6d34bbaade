"""Type rules of the expression language and small helpers for readable errors."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

from streams.engine.registry import FUNCTIONS

NUMERIC = frozenset({"number", "days"})
"""Numbers and days are interchangeable."""
TYPE_WORDS = {
    "bool": "true/false",
    "null": "null",
    "list": "a list",
    "string": "a string",
    "number": "a number",
    "days": "a number of days",
    "any": "a trait",
}
PLURALS = {"bool": "true/false values", "string": "strings", "number": "numbers", "days": "days"}
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def word(type_: str) -> str:
    """A type as marketers read it: 'a number', 'a string', 'true/false'."""
    return TYPE_WORDS.get(type_, type_)


def suggest(word: str, candidates: Collection[str]) -> str:
    """ "; did you mean 'x'?" for the closest candidate, or ""."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unescape(body: str) -> str:
    """The text of a string literal's body; ValueError for an unknown escape."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in ESCAPES:
            out.append(ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise ValueError(f"unknown escape '\\{nxt}' in string")
    return "".join(out)


def number(text: str) -> int | float:
    """A number literal: int when short and integral, else float (huge ones become inf)."""
    if text.isdigit() and len(text) <= 30:
        return int(text)
    return float(text)


def eq_ok(a: str, b: str) -> bool:
    """Whether types a and b may be compared with == / != (and 'in' a list)."""
    return "any" in (a, b) or "null" in (a, b) or (a in NUMERIC and b in NUMERIC) or a == b


def order_ok(a: str, b: str) -> bool:
    """Whether types a and b may be compared with < <= > >=."""
    if "null" in (a, b) or "bool" in (a, b) or "list" in (a, b):
        return False
    return "any" in (a, b) or (a in NUMERIC and b in NUMERIC) or a == b == "string"


def compare_problem(op: str, a: str, b: str, elems: Collection[str] = ()) -> str | None:
    """Why `a OP b` is a type error (types as in namespace.Type, plus list/null), or None."""
    if op in ("in", "not in"):
        if a == "list":
            return "a list can only be on the right of 'in'"
        if b == "list":
            bad = sorted(e for e in elems if not eq_ok(a, e))
            if not bad:
                return None
            return f"cannot look for {word(a)} in a list of {PLURALS.get(bad[0], bad[0])}"
        if b == "string":
            return (
                None
                if a in ("string", "any")
                else f"'in' a string needs a string on its left, not {word(a)}"
            )
        if b == "any":
            return None
        return f"'in' needs a list or a string on its right, not {word(b)}"
    if "list" in (a, b):
        return "lists can only be used with 'in'"
    if op in ("==", "!="):
        ok = eq_ok(a, b)
    else:
        if "null" in (a, b):
            return "null can only be compared with == or !="
        ok = order_ok(a, b)
    return None if ok else f"cannot compare {word(a)} with {word(b)}"


def example(fn: str) -> str:
    """A sample call of a namespace function, for error messages."""
    function = FUNCTIONS.get(fn)
    return function.example if function is not None else f"{fn}(...)"
