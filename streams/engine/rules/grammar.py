"""The expression grammar (lark, LALR, built once at import) and friendly syntax-error messages."""

from __future__ import annotations

from collections.abc import Iterable

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

GRAMMAR = r"""
?start: or_test
?or_test: and_test ("or" and_test)*
?and_test: not_test ("and" not_test)*
?not_test: "not" not_test -> not_
         | comparison
?comparison: sum (comp_op sum)*
!comp_op: "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
?sum: product (add_op product)*
!add_op: "+" | "-"
?product: unary (mul_op unary)*
!mul_op: "*" | "/"
?unary: "-" unary -> neg
      | "+" unary -> pos
      | atom
?atom: literal
     | NAME "(" [or_test ("," or_test)*] ")" -> call
     | NAME -> name
     | "[" [item ("," item)* [","]] "]" -> list
     | "(" or_test ")"
?literal: NUMBER -> number
        | DURATION -> duration
        | STRING -> string
        | "true" -> true
        | "false" -> false
        | "null" -> null
?item: literal
     | "-" NUMBER -> neg_number
     | "-" DURATION -> neg_duration
NAME: /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/
DURATION.2: /[0-9]+(\.[0-9]+)?[smhdw](?![A-Za-z0-9_])/
NUMBER: /([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?/
STRING: /"([^"\\\n]|\\.)*"/ | /'([^'\\\n]|\\.)*'/
%ignore /[ \t\r\n]+/
"""

PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)

_VALUE_TERMINALS = frozenset({"NAME", "NUMBER", "STRING", "DURATION"})
_HINTS = {
    "=": "use == to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or != to compare)",
    '"': "unterminated string",
    "'": "unterminated string",
}


def parse(source: str) -> Tree[Token]:
    """Parse an expression; raises lark's UnexpectedInput on a syntax error."""
    return PARSER.parse(source)


def _patterns(names: Iterable[str]) -> set[str]:
    out = set()
    for name in names:
        if name == "$END":
            continue
        pattern = PARSER.get_terminal(name).pattern
        if isinstance(pattern, PatternStr):
            out.add(pattern.value)
    return out


def _expected(names: Iterable[str]) -> str:
    names = set(names)
    if names & _VALUE_TERMINALS:
        return 'expected a value (a number, a "string", a feature or a function call)'
    pats = _patterns(names)
    parts = []
    if pats & {"==", "<", "and", "or", "+"}:
        parts.append("an operator (==, !=, <, <=, >, >=, in, and, or, +, -, *, /)")
    parts += [f"'{p}'" for p in (")", "]", ",") if p in pats]
    if not parts:
        return "expected the end of the expression"
    return "expected " + " or ".join(parts)


def syntax_error(source: str, err: UnexpectedInput) -> tuple[int, str]:
    """(offset in source, message) for a lark syntax error."""
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        ch = source[pos] if pos < len(source) else ""
        hint = _HINTS.get(ch)
        if ch == "!" and source[pos : pos + 2] == "!=":
            hint = None
        if hint:
            return pos, f"unexpected {ch!r}: {hint}"
        return pos, f"unexpected character {ch!r}; {_expected(err.allowed)}"
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            return len(source), f"unexpected end of expression; {_expected(err.expected)}"
        pos = tok.start_pos if tok.start_pos is not None else 0
        if tok.type == "NAME" and pos > 0 and source[pos - 1].isdigit():
            start = pos
            while start > 0 and (source[start - 1].isdigit() or source[start - 1] == "."):
                start -= 1
            literal = source[start:pos] + str(tok.value)
            return start, (
                f"bad duration {literal!r}: write a number and one of the units s, m, h, d, w "
                "(e.g. 30m, 7d)"
            )
        return pos, f"unexpected {tok.value!r}; {_expected(err.expected)}"
    if isinstance(err, UnexpectedEOF):
        return len(source), f"unexpected end of expression; {_expected(err.expected)}"
    return 0, "syntax error"
