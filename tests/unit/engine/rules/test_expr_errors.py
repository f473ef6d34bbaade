from __future__ import annotations

import pytest

from streams.engine.rules import RuleIssue, RulesError, compile_expr

SEGMENTS = ("champions", "road-pro")


def issues(source: str, line: int = 1, col: int = 1) -> list[tuple[int, int, str]]:
    with pytest.raises(RulesError) as info:
        compile_expr(source, segments=SEGMENTS, line=line, col=col, file="r.yaml")
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return [(i.line, i.col, i.message) for i in info.value.issues]


def one(source: str, line: int = 1, col: int = 1) -> tuple[int, int, str]:
    found = issues(source, line, col)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("source", "col", "message"),
    [
        ("ordrs > 1", 1, "unknown feature 'ordrs'; did you mean 'orders'?"),
        ("orders > 1 and rfm.x > 2", 16, "unknown feature 'rfm.x'"),
        ("trait.gender == 'f'", 1, "did you mean 'traits.gender'?"),
        ("traits == 1", 1, "write traits.<name>"),
        ("affinity > 1", 1, "'affinity' is a function: call it"),
        ("orders() > 1", 1, "'orders' is a feature, not a function"),
        ("afinity('road') > 1", 1, "unknown function 'afinity'; did you mean 'affinity'?"),
        ("affinity() > 1", 1, "affinity() takes 1 argument, got 0"),
        ("distance_km(1) < 5", 1, "distance_km() takes 2 arguments, got 1"),
        ("affinity(1) > 0.5", 10, "argument 1 of affinity() must be a string, not a number"),
        ("distance_km('a', 1) < 5", 13, "argument 1 of distance_km() must be a number"),
        ("in_segment('champs')", 12, "unknown segment 'champs'; did you mean 'champions'?"),
        ("in_segment(top_category)", 12, "in_segment() needs a segment name in quotes"),
        ("top_category == 5", 14, "cannot compare a string with a number: top_category == 5"),
        ("orders < 'x'", 8, "cannot compare a number with a string"),
        ("consented > true", 11, "cannot compare true/false with true/false"),
        ("consented == 1", 11, "cannot compare true/false with a number"),
        ("null < orders", 6, "null can only be compared with == or !="),
        ("orders in 5", 8, "'in' needs a list or a string on its right, not a number"),
        ("orders in ['a']", 8, "cannot look for a number in a list of strings"),
        ("orders in 'abc'", 8, "'in' a string needs a string on its left, not a number"),
        ("[1] in [1]", 5, "a list can only be on the right of 'in'"),
        ("[1] == [1]", 5, "lists can only be used with 'in'"),
        ("orders in [1, 'a']", 11, "a list must hold values of one kind"),
        ("orders", 1, "a condition must be true or false (e.g. orders >= 3), but this is a number"),
        ("top_category", 1, "but this is a string"),
        ("not orders", 1, "'not' needs true/false, but orders is a number"),
        ("orders and true", 1, "'and' needs true/false on both sides, but orders is a number"),
        ("true or 'x'", 9, "'or' needs true/false on both sides"),
        ("top_category + 1 > 2", 14, "'+' needs numbers on both sides, not a string"),
        ("-top_category == 1", 1, "unary '-' needs a number, not a string"),
        ("traits.x == 'a\\q'", 13, "unknown escape '\\q' in string"),
        ("traits.__class__ == 1", 1, "trait names may not start with '_'"),
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
    ],
)
def test_type_and_name_errors(source: str, col: int, message: str) -> None:
    line_, col_, msg = one(source)
    assert (line_, col_) == (1, col)
    assert message in msg


@pytest.mark.parametrize(
    ("source", "col", "message"),
    [
        ("orders >", 9, "unexpected end of expression; expected a value"),
        ("orders > 1 and", 15, "unexpected end of expression"),
        ("orders = 1", 8, "unexpected '=': use == to compare"),
        ("orders > 1 && views > 1", 12, "use 'and'"),
        ("orders > 1 || views > 1", 12, "use 'or'"),
        ("!consented", 1, "use 'not'"),
        ('traits.x == "abc', 13, "unterminated string"),
        ("orders > 1)", 11, "unexpected ')'"),
        ("(orders > 1", 12, "expected ')'"),
        ("orders 1", 8, "unexpected '1'; expected an operator"),
        ("7dx > 1", 1, "bad duration '7dx'"),
        ("days_since_last_order > 30x", 25, "bad duration '30x': write a number and one of"),
        ("days_since_last_order > 1.5mo", 25, "bad duration '1.5mo'"),
        ("orders > 1 {", 12, "unexpected character '{'"),
        ("f(1,)", 5, "unexpected ')'"),
        ("().__class__", 2, "unexpected ')'"),
    ],
)
def test_syntax_errors(source: str, col: int, message: str) -> None:
    line_, col_, msg = one(source)
    assert (line_, col_) == (1, col)
    assert message in msg


def test_positions_are_offset_into_the_file() -> None:
    assert one("ordrs > 1", line=12, col=11)[:2] == (12, 11)
    assert one("orders > 1 and ordrs > 1", line=12, col=11)[:2] == (12, 26)
    # later lines of a multi-line source keep their own columns
    assert one("orders > 1 and\n  ordrs > 1", line=5, col=9)[:2] == (6, 3)


def test_all_issues_are_reported_in_order() -> None:
    found = issues("ordrs > 1 and in_segment('nope') and top_category > 3")
    assert [(ln, c) for ln, c, _ in found] == [(1, 1), (1, 26), (1, 51)]


def test_refuses_python() -> None:
    for source in (
        "__import__('os')",
        "().__class__",
        "traits.__class__",
        "orders.__class__",
        "orders.__class__ == 1",
        "eval('1')",
        "lambda: 1",
        "[x for x in y]",
        "orders if true else 1",
        "a.b.c()",
        "__builtins__",
    ):
        with pytest.raises(RulesError):
            compile_expr(source, segments=())


def test_size_limits() -> None:
    deep = "(" * 40 + "orders" + ")" * 40 + " > 1"  # parentheses add no depth
    compile_expr(deep, segments=())
    assert "nested too deeply" in one("not " * 40 + "consented")[2]
    assert "too large" in one(" + ".join(["orders"] * 200) + " > 1")[2]
    assert "list is too long" in one("orders in [" + ", ".join(["1"] * 1001) + "]")[2]
    compile_expr("orders in [" + ", ".join(["1"] * 1000) + "]", segments=())
    assert "string is too long" in one("city == '" + "x" * 1001 + "'")[2]
    compile_expr("city == '" + "x" * 1000 + "'", segments=())
    assert "too long" in one("orders > 1" + " " * 100_000)[2]


def test_own_segment_and_issue_format() -> None:
    from streams.engine.rules.expr import compile_at, offset_locator

    with pytest.raises(RulesError) as info:
        compile_at(
            "in_segment('me')",
            segments={"me"},
            locate=offset_locator("x", 3, 9),
            file="f.yaml",
            own="me",
        )
    assert [str(i) for i in info.value.issues] == [
        "f.yaml:3:20: segment 'me' cannot refer to itself"
    ]
    assert str(RuleIssue("a.yaml", 2, 5, "boom")) == "a.yaml:2:5: boom"
    assert isinstance(info.value, ValueError)
