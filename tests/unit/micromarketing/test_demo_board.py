"""The demo's table: segment sizes from the changes, trigger counts per arm, lift with its CI."""

from __future__ import annotations

import argparse
import io
import re

import pytest

from micromarketing.demo.args import uplift_arg
from micromarketing.demo.board import LEGEND, Board, Tally, table
from micromarketing.demo.results import lift_text


def _tally() -> Tally:
    t = Tally()
    for change in ("entered", "entered", "exited"):
        t.add("segment-changes", {"segment": "champions", "change": change}, 0.0)
    t.add("triggers.retargeting", {"campaign": "cart-abandonment", "holdout": False}, 0.0)
    t.add("triggers.retargeting", {"campaign": "cart-abandonment", "holdout": True}, 0.0)
    t.add("suppressed", {"campaign": "cart-abandonment", "reason": "cooldown"}, 0.0)
    return t


def test_the_table_shows_sizes_arms_and_the_lift_with_its_interval() -> None:
    report = {
        "cart-abandonment": {
            "converted_treated": 40,
            "converted_holdout": 3,
            "lift": 0.0712,
            "lift_ci95": [0.031, 0.1114],
        }
    }
    lines = table(_tally(), "header", 1.0, report, {"cart-abandonment": 0.1}, "")
    text = "\n".join(lines)
    assert re.search(r"champions +1\b", text)  # two entered, one exited
    row = next(line for line in lines if line.startswith("cart-abandonment"))
    assert row.split()[1:5] == ["2", "1", "1", "40"]  # trig/min, sent, held, conv sent
    assert "+7.1 [+3.1, +11.1]" in row and row.endswith("+10.0")
    assert "cooldown 1" in text and lines[-1] == LEGEND


def test_without_results_the_table_says_why_and_shows_no_lift() -> None:
    lines = table(_tally(), "header", 1.0, None, {}, "lift: not in this build")
    row = next(line for line in lines if line.startswith("cart-abandonment"))
    assert "[" not in row and "lift: not in this build" in lines


def test_an_empty_arm_has_no_interval() -> None:
    assert lift_text({"lift": None, "lift_ci95": None}) == "-"


def test_the_board_redraws_in_place_on_a_terminal_and_in_blocks_otherwise() -> None:
    out = io.StringIO()
    board = Board(out, in_place=True)
    board.draw(["a", "b", "c"])
    board.draw(["a", "b"])
    assert out.getvalue().count("\033[3F") == 1 and out.getvalue().endswith("\033[J")
    plain = io.StringIO()
    Board(plain, in_place=False).draw(["a", "b"])
    assert plain.getvalue() == "a\nb\n\n"


def test_uplift_is_given_in_points_and_checked() -> None:
    assert uplift_arg("cart-abandonment=12.5") == ("cart-abandonment", 0.125)
    for bad in ("cart", "cart=", "=5", "cart=150", "cart=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            uplift_arg(bad)
