"""The rules expression language: parse (lark), type-check against the namespace, compile.

Compilation builds a tree of expression nodes (see `nodes.py`); nothing is ever evaluated as
Python source. Semantics: a missing value is None, every comparison with None is False (except
`x == null` / `x != null`), `not None` is True, arithmetic with None or a division by zero gives
None. Duration literals (`7d`, `30m`) are numbers of days.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedInput

from streams.engine.namespace import FEATURES, FUNCTIONS, TRAITS_PREFIX
from streams.engine.rules import nodes as N
from streams.engine.rules import readers
from streams.engine.rules import typecheck as T
from streams.engine.rules.durations import DAY, DurationError, parse_duration
from streams.engine.rules.grammar import parse, syntax_error
from streams.engine.rules.model import Expr, RuleIssue, RulesError

MAX_NODES = 256
MAX_DEPTH = 32
MAX_LIST = 1000
MAX_STRING = 1000
MAX_SOURCE = 100_000
MAX_NUMBER_TEXT = 40  # characters of a number literal

Locate = Callable[[int], tuple[int, int]]
"""Maps an offset in the expression's source to (line, col) in the file, both 1-based."""

Key = tuple[Any, ...]
"""What a compiled node computes, as a tree: (tag, details..., child keys...). Two nodes with
the same key compute the same value from the same view. Child keys are the tuple items."""

#: features computed anew on every read (the others are fields or cached by the view)
COMPUTED_FEATURES = frozenset(f.attr for f in FEATURES.values() if f.computed)
_SLOTS = itertools.count()  # memo slots, unique across rule sets


def _children(key: Key) -> Iterator[Key]:
    return (k for k in key[1:] if isinstance(k, tuple))


def _reads_members(key: Key) -> bool:
    return key[:2] == ("call", "in_segment") or any(_reads_members(k) for k in _children(key))


def reads(key: Key) -> frozenset[str]:
    """The features and functions (registry names) an expression with this key reads, and
    `traits` if it reads any trait."""
    found: set[str] = set()
    stack = [key]
    while stack:
        k = stack.pop()
        if k[0] == "f":
            found.add(_NAME_OF[k[1]])
        elif k[0] == "call":
            found.add(k[1])
        elif k[0] == "t":
            found.add("traits")
        stack.extend(_children(k))
    return frozenset(found)


def _costly(key: Key) -> bool:
    if key[0] == "call" or (key[0] == "f" and key[1] in COMPUTED_FEATURES):
        return True
    return any(_costly(k) for k in _children(key))


class Sharing:
    """Sub-expressions a rule set computes more than once per view, computed once instead.

    A rule set is compiled twice: first to find the keys of the expressions (`roots`), then,
    after `plan()`, with every shared sub-expression memoized per view (`N.Memo`). Only
    sub-expressions that call a function or read a computed feature are worth it, and only
    those that do not read memberships (`in_segment()` changes as segments are evaluated).
    """

    def __init__(self) -> None:
        self.roots: list[Key] = []
        self.memo: dict[Key, _T] | None = None  # None while finding the keys
        self.trees: dict[str, Tree[Token]] = {}  # parsed once, compiled in both passes
        self._chosen: set[Key] = set()

    def plan(self) -> bool:
        """Choose what to memoize from `roots`, largest first; False if nothing is shared."""
        chosen: set[Key] = set()
        while True:
            uses: Counter[Key] = Counter()
            done: set[Key] = set()
            for root in self.roots:
                self._count(root, chosen, uses, done)
            candidates = [
                k
                for k, n in uses.items()
                if n > 1 and k not in chosen and _costly(k) and not _reads_members(k)
            ]
            if not candidates:
                break
            chosen.add(max(candidates, key=lambda k: len(repr(k))))
        self.memo = {}
        self._chosen = chosen
        return bool(chosen)

    def _count(self, key: Key, chosen: set[Key], uses: Counter[Key], done: set[Key]) -> None:
        """Count the evaluations of `key` and below; a chosen key's operands count once."""
        uses[key] += 1
        if key in chosen:
            if key in done:
                return
            done.add(key)
        for k in _children(key):
            self._count(k, chosen, uses, done)

    def use(self, n: _T) -> _T:
        """`n`, memoized if it is shared (the same node for every occurrence)."""
        if self.memo is None or n.const or n.key not in self._chosen:
            return n
        shared = self.memo.get(n.key)
        if shared is None:
            fn = N.Memo(n.fn, next(_SLOTS))
            shared = self.memo[n.key] = _T(n.type, fn, False, None, n.elems, n.key)
        return shared


def compile_expr(
    source: str,
    *,
    segments: Collection[str],
    line: int = 1,
    col: int = 1,
    file: str = "<expr>",
) -> Expr:
    """Compile a top-level (`when` / `if`) expression; it must be true/false.

    `segments` are the names `in_segment()` may use; `line`/`col` is where `source` starts in
    `file`, so that errors point into the file. Raises RulesError listing every problem.
    """
    return compile_at(
        source, segments=segments, locate=offset_locator(source, line, col), file=file
    )


def offset_locator(source: str, line: int, col: int) -> Locate:
    """A Locate for `source` written verbatim at `line`:`col` of a file."""

    def locate(offset: int) -> tuple[int, int]:
        before = source[:offset]
        nl = before.count("\n")
        if nl == 0:
            return line, col + offset
        return line + nl, offset - before.rfind("\n")

    return locate


def compile_at(
    source: str,
    *,
    segments: Collection[str],
    locate: Locate,
    file: str,
    own: str | None = None,
    sharing: Sharing | None = None,
) -> Expr:
    """Like compile_expr with an arbitrary offset mapping; `own` is the segment being defined
    (it may not refer to itself). The expressions of one rule set share a `sharing`."""
    names = segments if isinstance(segments, frozenset) else frozenset(segments)
    comp = _Compiler(source, names, own, sharing)
    node = comp.run()
    if comp.issues:
        issues = [RuleIssue(file, *locate(pos), msg) for pos, msg in comp.issues]
        raise RulesError(sorted(issues, key=lambda i: (i.line, i.col)))
    assert node is not None
    if sharing is not None and sharing.memo is None:
        sharing.roots.append(node.key)
    line, col = locate(0)
    return Expr(source=source, fn=node.fn, line=line, col=col, reads=reads(node.key))


@dataclass(slots=True)
class _T:
    """A typed, compiled node. `const` nodes carry their `value`."""

    type: str
    fn: N.Node
    const: bool = False
    value: Any = None
    elems: frozenset[str] = frozenset()  # for lists: the item types
    key: Key = ("error",)


def _const(type_: str, value: Any) -> _T:
    return _T(type_, N.Const(value), True, value, key=("k", type(value).__name__, repr(value)))


_ERROR = _T("any", N.Const(None))


def _pos(t: Tree[Token] | Token, default: int = 0) -> int:
    if isinstance(t, Token):
        return t.start_pos if t.start_pos is not None else default
    return default if t.meta.empty else t.meta.start_pos


def _end(t: Tree[Token] | Token, default: int) -> int:
    if isinstance(t, Token):
        return t.end_pos if t.end_pos is not None else default
    return default if t.meta.empty else t.meta.end_pos


class _Compiler:
    def __init__(
        self, source: str, segments: frozenset[str], own: str | None, sharing: Sharing | None
    ) -> None:
        self.src = source
        self.segments = segments
        self.own = own
        self.sharing = sharing
        self.issues: list[tuple[int, str]] = []

    def error(self, pos: int, msg: str) -> _T:
        self.issues.append((pos, msg))
        return _ERROR

    def snippet(self, t: Tree[Token] | Token) -> str:
        text = self.src[_pos(t) : _end(t, len(self.src))].strip()
        return text if len(text) <= 40 else text[:37] + "..."

    def run(self) -> _T | None:
        src = self.src
        if not isinstance(src, str) or not src.strip():
            self.error(0, "empty expression")
            return None
        if len(src) > MAX_SOURCE:
            self.error(0, f"expression is too long (over {MAX_SOURCE} characters)")
            return None
        try:
            trees = self.sharing.trees if self.sharing is not None else None
            tree = trees.get(src) if trees is not None else None
            if tree is None:
                tree = parse(src)
                if trees is not None:
                    trees[src] = tree
        except UnexpectedInput as err:
            self.error(*syntax_error(src, err))
            return None
        if not self.bounded(tree):
            return None
        node = self.node(tree)
        if node.type not in ("bool", "any") and not self.issues:
            self.error(
                _pos(tree),
                "a condition must be true or false (e.g. orders >= 3), "
                f"but this is {T.word(node.type)}",
            )
        return node

    def bounded(self, tree: Tree[Token]) -> bool:
        """Refuse trees over MAX_NODES nodes or MAX_DEPTH deep (list items do not count)."""
        count = 0
        stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
        while stack:
            t, depth = stack.pop()
            count += 1
            if depth > MAX_DEPTH:
                self.error(_pos(t), f"expression is nested too deeply (over {MAX_DEPTH} levels)")
                return False
            if count > MAX_NODES:
                self.error(0, f"expression is too large (over {MAX_NODES} parts)")
                return False
            if isinstance(t, Tree) and t.data != "list":
                stack.extend((c, depth + 1) for c in t.children)
        return True

    def node(self, t: Tree[Token]) -> _T:
        kind = str(t.data)
        handler = _HANDLERS.get(kind)
        if handler is None:  # pragma: no cover - the grammar has no other rules
            return self.error(_pos(t), f"unsupported syntax {kind!r}")
        return handler(self, t)

    def child(self, c: Tree[Token] | Token) -> _T:
        assert isinstance(c, Tree)
        return self.node(c)

    # literals
    def number(self, t: Tree[Token]) -> _T:
        return self.literal(t, 1)

    def neg_number(self, t: Tree[Token]) -> _T:
        return self.literal(t, -1)

    def literal(self, t: Tree[Token], sign: int) -> _T:
        text = str(t.children[0])
        value = T.number(text) if len(text) <= MAX_NUMBER_TEXT else math.inf
        if not math.isfinite(value):
            shown = text if len(text) <= 20 else text[:17] + "..."
            return self.error(_pos(t.children[0]), f"number {shown} is too large")
        return _const("number", sign * value)

    def duration(self, t: Tree[Token]) -> _T:
        return self.days(t, 1)

    def neg_duration(self, t: Tree[Token]) -> _T:
        return self.days(t, -1)

    def days(self, t: Tree[Token], sign: int) -> _T:
        try:
            return _const("days", sign * parse_duration(str(t.children[0])) / DAY)
        except DurationError as err:
            return self.error(_pos(t), str(err))

    def string(self, t: Tree[Token]) -> _T:
        tok = t.children[0]
        try:
            value = T.unescape(str(tok)[1:-1])
        except ValueError as e:
            return self.error(_pos(t), str(e))
        if len(value) > MAX_STRING:
            return self.error(_pos(t), f"string is too long (over {MAX_STRING} characters)")
        return _const("string", value)

    def true(self, t: Tree[Token]) -> _T:
        return _const("bool", True)

    def false(self, t: Tree[Token]) -> _T:
        return _const("bool", False)

    def null(self, t: Tree[Token]) -> _T:
        return _const("null", None)

    def list_(self, t: Tree[Token]) -> _T:
        if len(t.children) > MAX_LIST:
            return self.error(_pos(t), f"list is too long (over {MAX_LIST} items)")
        items = [self.child(c) for c in t.children]
        kinds = {"number" if i.type in T.NUMERIC else i.type for i in items if i.type != "any"}
        if len(kinds) > 1:
            return self.error(
                _pos(t), "a list must hold values of one kind (all strings or all numbers)"
            )
        value = tuple(i.value for i in items)
        types = frozenset(i.type for i in items)
        return _T("list", N.Const(value), True, value, types, ("k", "tuple", repr(value)))

    # names and calls
    def name(self, t: Tree[Token]) -> _T:
        tok = t.children[0]
        name, pos = str(tok), _pos(tok)
        feature = FEATURES.get(name)
        if feature is not None:
            return _T(feature.type, readers.feature(feature.attr), key=("f", feature.attr))
        if name.startswith(TRAITS_PREFIX):
            key = name[len(TRAITS_PREFIX) :]
            if key.startswith("_"):
                return self.error(pos, f"trait names may not start with '_': {name!r}")
            return _T("any", N.Trait(key), key=("t", key))
        if name == "traits":
            return self.error(pos, "write traits.<name>, e.g. traits.gender")
        if name in FUNCTIONS:
            return self.error(pos, f"'{name}' is a function: call it, e.g. {T.example(name)}")
        if name.startswith("trait."):
            return self.error(
                pos, f"unknown feature '{name}'; did you mean 'traits.{name[len('trait.') :]}'?"
            )
        return self.error(pos, f"unknown feature '{name}'{T.suggest(name, _NAMES)}")

    def call(self, t: Tree[Token]) -> _T:
        tok, *arg_trees = t.children
        name, pos = str(tok), _pos(tok)
        fn = FUNCTIONS.get(name)
        if fn is None:
            if name in FEATURES:
                return self.error(
                    pos, f"'{name}' is a feature, not a function: write it without parentheses"
                )
            return self.error(pos, f"unknown function '{name}'{T.suggest(name, FUNCTIONS)}")
        if len(arg_trees) != len(fn.params):
            n = len(fn.params)
            return self.error(
                pos,
                f"{name}() takes {n} argument{'s' if n != 1 else ''}, "
                f"got {len(arg_trees)}: e.g. {T.example(name)}",
            )
        if name == "in_segment":
            return self.in_segment(t, arg_trees[0])
        args = [self.child(a) for a in arg_trees]
        ok = True
        for i, (arg, want, a_tree) in enumerate(zip(args, fn.params, arg_trees, strict=True)):
            good = (
                arg.type == "any"
                or arg.type == want
                or (want == "number" and arg.type in T.NUMERIC)
            )
            if not good:
                ok = False
                self.error(
                    _pos(a_tree, pos),
                    f"argument {i + 1} of {name}() must be "
                    f"{T.word(want)}, not {T.word(arg.type)}: e.g. {T.example(name)}",
                )
        if not ok:
            return _ERROR
        fn_ = N.call(name, [(a.const, a.value, a.fn) for a in args])
        return self.share(_T(fn.returns, fn_, key=("call", name, *(a.key for a in args))))

    def in_segment(self, t: Tree[Token], arg: Tree[Token] | Token) -> _T:
        if not (isinstance(arg, Tree) and arg.data == "string"):
            return self.error(
                _pos(arg, _pos(t)),
                'in_segment() needs a segment name in quotes, e.g. in_segment("champions")',
            )
        node = self.child(arg)
        if not node.const:
            return node
        seg = node.value
        if seg == self.own:
            return self.error(_pos(arg), f"segment '{seg}' cannot refer to itself")
        if seg not in self.segments:
            return self.error(_pos(arg), f"unknown segment '{seg}'{T.suggest(seg, self.segments)}")
        fn = N.call("in_segment", [(True, seg, node.fn)])
        return _T("bool", fn, key=("call", "in_segment", node.key))

    # operators
    def not_(self, t: Tree[Token]) -> _T:
        n = self.child(t.children[0])
        if n.type not in ("bool", "any"):
            return self.error(
                _pos(t),
                f"'not' needs true/false, but {self.snippet(t.children[0])} is {T.word(n.type)}",
            )
        return self.fold(_T("bool", N.Not(n.fn), key=("not", n.key)), [n])

    def or_test(self, t: Tree[Token]) -> _T:
        return self.logic(t, N.or_)

    def and_test(self, t: Tree[Token]) -> _T:
        return self.logic(t, N.and_)

    def logic(self, t: Tree[Token], build: Callable[[list[N.Node]], N.Node]) -> _T:
        word = "or" if t.data == "or_test" else "and"
        nodes = [self.child(c) for c in t.children]
        for n, c in zip(nodes, t.children, strict=True):
            if n.type not in ("bool", "any"):
                self.error(
                    _pos(c),
                    f"'{word}' needs true/false on both sides, but "
                    f"{self.snippet(c)} is {T.word(n.type)}",
                )
        fn = build([n.fn for n in nodes])
        # "bool" nodes (comparisons, in_segment, not, and/or, consented) return True/False;
        # only operands of other types (traits) need the result made a bool
        if any(n.type != "bool" for n in nodes):
            fn = N.AsBool(fn)
        return self.fold(_T("bool", fn, key=(word, *(n.key for n in nodes))), nodes)

    def neg(self, t: Tree[Token]) -> _T:
        return self.unary(t, N.Negate, "-")

    def pos(self, t: Tree[Token]) -> _T:
        return self.unary(t, N.Plus, "+")

    def unary(self, t: Tree[Token], build: Callable[[N.Node], N.Node], sign: str) -> _T:
        n = self.child(t.children[0])
        if n.type not in T.NUMERIC and n.type != "any":
            return self.error(_pos(t), f"unary '{sign}' needs a number, not {T.word(n.type)}")
        return self.fold(_T(n.type, build(n.fn), key=(sign, n.key)), [n])

    def arith(self, t: Tree[Token]) -> _T:
        kids = t.children
        acc = self.child(kids[0])
        for i in range(1, len(kids), 2):
            op_tree, rhs_tree = kids[i], kids[i + 1]
            assert isinstance(op_tree, Tree)
            op = str(op_tree.children[0])
            rhs = self.child(rhs_tree)
            bad = [n for n in (acc, rhs) if n.type not in T.NUMERIC and n.type != "any"]
            if bad:
                return self.error(
                    _pos(op_tree), f"'{op}' needs numbers on both sides, not {T.word(bad[0].type)}"
                )
            type_ = "days" if "days" in (acc.type, rhs.type) and op in "+-" else "number"
            if "any" in (acc.type, rhs.type):
                type_ = "any" if acc.type == rhs.type else type_
            fn = N.Arith(op, acc.fn, rhs.fn)
            acc = self.fold(_T(type_, fn, key=("arith", op, acc.key, rhs.key)), [acc, rhs])
        return acc

    def comparison(self, t: Tree[Token]) -> _T:
        kids = t.children
        operands = [self.child(c) for c in kids[0::2]]
        ops = []
        bad = False
        for i, op_tree in enumerate(kids[1::2]):
            assert isinstance(op_tree, Tree)
            op = " ".join(str(c) for c in op_tree.children)
            ops.append(op)
            a, b = operands[i], operands[i + 1]
            msg = T.compare_problem(op, a.type, b.type, b.elems)
            if msg:
                bad = True
                self.error(
                    _pos(op_tree),
                    f"{msg}: {self.snippet(kids[2 * i])} {op} {self.snippet(kids[2 * i + 2])}",
                )
        if bad:
            return _ERROR
        fn = N.compare(ops, [(n.const, n.value, n.fn) for n in operands])
        key = ("cmp", ",".join(ops), *(n.key for n in operands))
        return self.fold(_T("bool", fn, key=key), operands)

    def fold(self, n: _T, parts: list[_T]) -> _T:
        """Evaluate `n` now if all its operands are constants (they never touch the view)."""
        if all(p.const for p in parts):
            return _const(n.type, n.fn.ev(None))
        return self.share(n)

    def share(self, n: _T) -> _T:
        return n if self.sharing is None else self.sharing.use(n)


_NAMES = sorted(FEATURES)
_NAME_OF = {f.attr: f.name for f in FEATURES.values()}
_HANDLERS: dict[str, Callable[[_Compiler, Tree[Token]], _T]] = {
    "number": _Compiler.number,
    "neg_number": _Compiler.neg_number,
    "duration": _Compiler.duration,
    "neg_duration": _Compiler.neg_duration,
    "string": _Compiler.string,
    "true": _Compiler.true,
    "false": _Compiler.false,
    "null": _Compiler.null,
    "list": _Compiler.list_,
    "name": _Compiler.name,
    "call": _Compiler.call,
    "not_": _Compiler.not_,
    "or_test": _Compiler.or_test,
    "and_test": _Compiler.and_test,
    "neg": _Compiler.neg,
    "pos": _Compiler.pos,
    "sum": _Compiler.arith,
    "product": _Compiler.arith,
    "comparison": _Compiler.comparison,
}
