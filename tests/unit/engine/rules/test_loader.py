from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest

from streams.engine.clv import CustomerModels
from streams.engine.rules import (
    OfferTier,
    RulesError,
    RuleSet,
    Settings,
    Suppression,
    check_rules,
    load_rules,
    loads_rules,
)
from streams.engine.rules.command import run

from .fakeview import FakeView

ROOT = Path(__file__).resolve().parents[4]
BIKE_SHOP = ROOT / "examples" / "bike-shop" / "rules.yaml"

SPEC_EXAMPLE = """\
segments:                      # membership is re-evaluated on every event of the consumer
  - name: road-amateur-women
    when: traits.gender == "female" and affinity("road") >= 0.5 and 500 <= price_band < 2000
  - name: champions
    when: rfm.r >= 4 and rfm.f >= 4
  - name: price-sensitive
    when: orders >= 2 and discount_share >= 0.5
triggers:
  - name: cart-abandonment
    kind: retargeting          # retargeting | winback
    on: Product Added          # arms (or re-arms: the timer restarts) on this event
    wait: 30m                  # fires this long after the last arming event...
    unless: [Order Completed]  # ...unless one of these came in between (then disarmed)
    offer: free-shipping
  - name: winback-60d
    kind: winback
    on: Order Completed
    wait: 60d
    unless: [Order Completed]
    if: orders >= 1            # checked at firing time; false means no trigger
    offers:                    # first matching tier wins
      - {if: "in_segment('champions')", offer: vip-20}
      - {offer: comeback-10}
    cooldown: 30d              # at most one trigger of this rule per consumer per cooldown
suppression:
  frequency_cap: {max: 3, per: 7d}   # across all triggers of a consumer
  holdout: 0.1                       # share of consumers held out per trigger, by stable hash
"""


def problems(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RulesError) as info:
        loads_rules(textwrap.dedent(text), "r.yaml")
    assert all(i.file == "r.yaml" for i in info.value.issues)
    return [(i.line, i.col, i.message) for i in info.value.issues]


def test_spec_example_loads() -> None:
    rules = loads_rules(SPEC_EXAMPLE, "spec.yaml")
    assert isinstance(rules, RuleSet)
    assert rules.path == "spec.yaml"
    assert rules.segment_names() == ("road-amateur-women", "champions", "price-sensitive")
    assert [s.index for s in rules.segments] == [0, 1, 2]
    cart = rules.trigger("cart-abandonment")
    assert cart.kind == "retargeting"
    assert cart.on == frozenset({"Product Added"})
    assert cart.wait == 1800.0
    assert cart.unless == frozenset({"Order Completed"})
    assert cart.when is None and cart.cooldown is None
    assert cart.offers == (OfferTier(None, "free-shipping"),)
    win = rules.trigger("winback-60d")
    assert (win.kind, win.wait, win.cooldown, win.index) == (
        "winback",
        60 * 86400.0,
        30 * 86400.0,
        1,
    )
    assert win.when is not None and (win.when.line, win.when.col) == (20, 9)
    first, second = win.offers
    assert first.when is not None and (first.when.line, first.when.col) == (22, 15)
    assert first.offer == "vip-20" and second == OfferTier(None, "comeback-10")
    assert first.when.fn(FakeView(members={"champions"})) is True
    assert first.when.fn(FakeView()) is False
    assert rules.suppression == Suppression(3, 7 * 86400.0, 0.1)
    assert rules.settings == Settings()
    assert len(rules.version) == 12
    assert loads_rules(SPEC_EXAMPLE).version == rules.version
    assert loads_rules(SPEC_EXAMPLE + "\n# changed\n").version != rules.version
    with pytest.raises(KeyError):
        rules.trigger("nope")


def test_bike_shop_example_loads() -> None:
    rules = load_rules(BIKE_SHOP)
    assert check_rules(BIKE_SHOP) == []
    names = set(rules.segment_names())
    assert {
        "mountain-beginner",
        "road-pro",
        "road-amateur-women",
        "champions",
        "at-risk-loyal",
        "price-sensitive",
        "local-shoppers",
        "vip-electric",
    } <= names
    assert {t.name for t in rules.triggers} == {
        "cart-abandonment",
        "browse-abandonment",
        "winback-60d",
        "lapsed-loyal",
    }
    assert rules.suppression == Suppression(3, 7 * 86400.0, 0.1)
    view = FakeView(affinities={"road": 0.8}, price_band=900.0, traits={"gender": "female"})
    inside = {s.name for s in rules.segments if s.when.fn(view)}
    assert {"road-amateur", "road-amateur-women", "champions", "local-shoppers"} <= inside
    assert "road-pro" not in inside


def test_settings() -> None:
    rules = loads_rules(
        "settings:\n  allowed_lateness: 5m\n  dedupe_window: 2d\n  affinity_half_life: 2w\n"
        "  bgnbd: {r: 1, alpha: 2.5, a: 0.5, b: 3}\n"
    )
    params = (1.0, 2.5, 0.5, 3.0)
    expected = Settings(300.0, 2 * 86400.0, 14 * 86400.0, params, models=CustomerModels(params))
    assert rules.settings == expected
    assert loads_rules("settings:\n  allowed_lateness: 0\n").settings.allowed_lateness == 0.0
    assert rules.segments == () and rules.triggers == ()


def test_yaml_11_booleans_are_read_as_written() -> None:
    rules = loads_rules(
        "triggers:\n  - {name: t, kind: winback, on: page, wait: 1d, offer: yes}\n"
        "  - {name: u, kind: winback, 'on': [identify, Order Completed], wait: 1d, offer: no}\n"
    )
    assert rules.trigger("t").offers[0].offer == "yes"
    assert rules.trigger("t").on == frozenset({"page"})
    assert rules.trigger("u").on == frozenset({"identify", "Order Completed"})


def test_every_issue_with_its_position() -> None:
    found = problems("""\
        segments:
          - name: champs
            when: rfm.r >= 4 and ordrs > 1
          - name: champs
            when: orders >= 1
          - name: 2024
            when: >
              orders >= 1 and
              top_category == 5
          - name: x
            wen: true
        triggers:
          - name: t
            kind: retarget
            on: Product Added
            wiat: 30m
            wait: 30x
            offer: a
            offers: [{offer: b}]
          - name: u
            kind: winback
            on: [Order Completed]
            wait: 60d
            if: "in_segment('champions')"
            offers:
              - {if: "in_segment('champs')", offer: vip-20}
              - {offre: comeback-10}
        suppression:
          frequency_cap: {max: 0, per: -3d}
          holdout: 1
        settings:
          bgnbd: {r: 1, alpha: 2, a: 3}
          dedupe_window: 0
        colour: blue
    """)
    assert found == [
        (3, 26, "unknown feature 'ordrs'; did you mean 'orders'?"),
        (4, 11, "duplicate segment name 'champs' (first defined on line 2)"),
        (6, 11, 'segment name must be a string; quote it, e.g. "2024"'),
        (9, 20, "cannot compare a string with a number: top_category == 5"),
        (10, 5, "segment is missing 'when'"),
        (11, 5, "unknown key 'wen' in segment; did you mean 'when'?"),
        (14, 11, "unknown kind 'retarget'; did you mean 'retargeting'?"),
        (16, 5, "unknown key 'wiat' in trigger; did you mean 'wait'?"),
        (17, 11, "wait: unknown duration unit 'x' in '30x': use s, m, h, d or w, e.g. 30m or 7d"),
        (19, 5, "trigger 't' has both 'offer' and 'offers': use one of them"),
        (24, 21, "unknown segment 'champions'; did you mean 'champs'?"),
        (27, 9, "offer tier is missing 'offer'"),
        (27, 10, "unknown key 'offre' in offer tier; did you mean 'offer'?"),
        (29, 24, "max must be at least 1"),
        (29, 32, "per: negative duration '-3d': durations must be zero or more"),
        (30, 12, "holdout must be at least 0 and less than 1, e.g. 0.1"),
        (32, 10, "bgnbd is missing 'b'"),
        (33, 18, "dedupe_window must be more than zero"),
        (
            34,
            1,
            "unknown key 'colour' in the rules file; allowed: segments, triggers, "
            "suppression, settings",
        ),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (1, 1, "the rules file is empty")),
        ("- a\n- b\n", (1, 1, "the rules file must be a mapping")),
        (
            "segments:\n  - name: a\n    when: [1\n",
            (4, 1, "YAML syntax error: expected ',' or ']'"),
        ),
        ("segments: {a: 1}\n", (1, 11, "'segments' must be a list")),
        ("segments:\n  - just-a-name\n", (2, 5, "segment must be a mapping")),
        ("segments:\n  - name: ''\n    when: true\n", (2, 11, "segment name must not be empty")),
        ("segments:\n  - name: a\n    when: [x]\n", (3, 11, "when must be an expression")),
        (
            "segments:\n  - {name: a, when: in_segment('a')}\n",
            (2, 32, "segment 'a' cannot refer to itself"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d}\n",
            (2, 5, "trigger 't' needs an 'offer' (or a list of 'offers')"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, offer: o}\n",
            (2, 5, "trigger is missing 'wait'"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 0s, offer: o}\n",
            (2, 43, "wait must be more than zero"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 60, offer: o}\n",
            (2, 43, "wait: duration '60' needs a unit"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: [], wait: 1d, offer: o}\n",
            (2, 34, "on needs at least one event name"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: {a: b}, wait: 1d, offer: o}\n",
            (2, 34, "on must be a list"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offers: []}\n",
            (2, 55, "offers needs at least one tier"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offer: [a]}\n",
            (2, 54, "offer must be a single value"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offer: o, cooldown: 1y}\n",
            (2, 67, "cooldown: unknown duration unit 'y'"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offer: o, if: orders}\n",
            (2, 61, "a condition must be true or false"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offer: o, unless: [[a]]}\n",
            (2, 66, "each entry of unless must be a single value"),
        ),
        (
            "triggers:\n  - {name: t, kind: winback, on: x, wait: 1d, offer: o}\n"
            "  - {name: t, kind: winback, on: x, wait: 1d, offer: o}\n",
            (3, 12, "duplicate trigger name 't' (first defined on line 2)"),
        ),
        (
            "suppression:\n  frequency_cap: {max: 2.5, per: 1d}\n",
            (2, 24, "max must be a whole number"),
        ),
        ("suppression:\n  frequency_cap: {max: 2}\n", (2, 18, "frequency_cap is missing 'per'")),
        ("suppression:\n  holdout: '0.1'\n", (2, 12, "holdout must be a number")),
        ("suppression:\n  holdout: true\n", (2, 12, "holdout must be a number")),
        ("suppression: 3\n", (1, 14, "suppression must be a mapping")),
        ("settings:\n  bgnbd: {r: 1, alpha: 0, a: 1, b: 1}\n", (2, 24, "alpha must be more")),
        (
            "settings:\n  dedupe_windows: 1d\n",
            (2, 3, "unknown key 'dedupe_windows' in settings; did you mean 'dedupe_window'?"),
        ),
        ("segments: []\nsegments: []\n", (2, 1, "duplicate key 'segments' in the rules file")),
        (
            "segments:\n  - name: a\n    when: true\n    ? [a]\n    : b\n",
            (4, 7, "keys in segment must be plain words"),
        ),
        ("a: b\n---\nc: d\n", (2, 1, "YAML syntax error: but found another document")),
        ("segments:\n  - name: a\n    when: 'ordrs > 1'\n", (3, 12, "unknown feature 'ordrs'")),
        (
            "segments:\n  - name: a\n    when: >-\n      orders > 1 and\n        ordrs > 1\n",
            (5, 9, "unknown feature 'ordrs'"),
        ),
        (
            "segments:\n  - name: a\n    when: orders > 1 and\n      ordrs > 1\n",
            (4, 7, "unknown feature 'ordrs'"),
        ),
    ],
)
def test_single_issue(text: str, expected: tuple[int, int, str]) -> None:
    found = problems(text)
    assert len(found) == 1, found
    line, col, message = found[0]
    assert (line, col) == expected[:2], found
    assert message.startswith(expected[2]) or expected[2] in message, found


def test_check_rules_and_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments:\n  - {name: a, when: ordrs > 1}\n  - {name: b, when: x > 1}\n")
    issues = check_rules(bad)
    assert [str(i) for i in issues] == [
        f"{bad}:2:21: unknown feature 'ordrs'; did you mean 'orders'?",
        f"{bad}:3:21: unknown feature 'x'",
    ]
    with pytest.raises(RulesError) as info:
        load_rules(bad)
    assert info.value.issues == issues
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"segments: []\n# caf\xe9\n")
    assert "not UTF-8" in check_rules(latin)[0].message


def test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SPEC_EXAMPLE)
    assert run(argparse.Namespace(file=str(good))) == 0
    version = loads_rules(SPEC_EXAMPLE).version
    assert capsys.readouterr().out == f"ok: 3 segments, 2 triggers (version {version})\n"

    bad = tmp_path / "bad.yaml"
    bad.write_text("segments:\n  - {name: a, when: ordrs > 1}\nfoo: 1\n")
    assert run(argparse.Namespace(file=str(bad))) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{bad}:2:21: unknown feature 'ordrs'; did you mean 'orders'?",
        f"{bad}:3:1: unknown key 'foo' in the rules file; allowed: segments, triggers, "
        "suppression, settings",
    ]

    missing = tmp_path / "missing.yaml"
    assert run(argparse.Namespace(file=str(missing))) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "no such file" in err
    assert run(argparse.Namespace(file=str(tmp_path))) == 2
    assert "directory" in capsys.readouterr().err


def test_shared_subexpressions_are_computed_once_per_view() -> None:
    rules = loads_rules(
        "segments:\n"
        "  - {name: a, when: 'affinity(\"road\") >= 0.5 and price_band < 500'}\n"
        "  - {name: b, when: 'affinity(\"road\") >= 0.5 and in_segment(\"a\")'}\n"
        "  - {name: c, when: 'affinity(\"road\") >= 0.5 or in_segment(\"a\")'}\n"
    )
    calls: list[str] = []

    class Counting(FakeView):
        def affinity(self, category: str) -> float:
            calls.append(category)
            return super().affinity(category)

    view = Counting(affinities={"road": 0.8}, price_band=400.0)
    assert [bool(s.when.fn(view)) for s in rules.segments] == [True, False, True]
    assert calls == ["road", "road", "road"]  # no memo on this view: computed every time
    view.memo = {}  # type: ignore[attr-defined]
    calls.clear()
    view.members = {"a"}
    assert [bool(s.when.fn(view)) for s in rules.segments] == [True, True, True]
    assert calls == ["road"]
