"""The order history `fit` reads, and its refusals."""

from __future__ import annotations

import orjson
import pytest

from micromarketing.cli import main
from streams.engine.bgnbd import WEEK, order_day
from streams.fit.history import read_history, summarize
from tests.unit.engine.helpers import DAY, HOUR, T0, identify, track


def lines(*events):
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def order(uid, t, oid, revenue=10.0, **more):
    return track(uid, "Order Completed", t, order_id=oid, revenue=revenue, **more)


def test_orders_of_a_day_are_one_transaction_and_reversed_orders_are_gone():
    history = read_history(
        lines(
            order("u", T0 + HOUR, "a", 20.0),
            order("u", T0 + 2 * HOUR, "b", 5.0),
            order("u", T0 + 2 * HOUR, "b", 5.0),  # reported twice
            track("u", "Order Refunded", T0 + 5 * DAY, order_id="d"),  # before its order
            order("u", T0 + 3 * DAY, "c", 30.0),
            order("u", T0 + 4 * DAY, "d", 50.0),
            order("u", T0 + 6 * DAY, "e", 70.0),
            track("u", "Order Cancelled", T0 + 7 * DAY, order_id="e"),
            b"not json",
        )
    )
    assert history.bad == 1
    first = order_day(T0)
    assert history.days() == {"u": {first: 25.0, first + 3: 30.0}}
    (c,) = summarize(history.days(), first + 10)
    assert (c.x, c.t_x, c.T, c.mean) == (1, 3 * DAY / WEEK, 10 * DAY / WEEK, 30.0)


def test_identity_merges_join_the_orders_of_both_ids():
    anon_order = order("x", T0 + DAY, "b")
    del anon_order["userId"]
    anon_order["anonymousId"] = "anon"
    history = read_history(
        lines(order("u", T0, "a"), anon_order, identify("u", T0 + 2 * DAY, anon="anon"))
    )
    assert list(history.days()) == ["u"] and len(history.days()["u"]) == 2


def test_customers_are_those_who_ordered_by_the_calibration_end_with_their_holdout_days():
    day = order_day(T0)
    days = {
        "early": {day: 1.0, day + 2: 1.0, day + 12: 1.0, day + 13: 1.0},
        "late": {day + 11: 1.0},
    }
    (c,) = summarize(days, day + 10, day + 20)
    assert (c.id, c.x, c.holdout) == ("early", 1, 2)


def test_a_history_without_repeat_buyers_is_refused_in_one_line(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        b"\n".join(lines(*[order(f"u{i}", T0 + i * HOUR, f"o{i}") for i in range(50)]))
    )
    out = tmp_path / "models.yaml"
    code = main(
        ["fit", str(events), "--calibration-end", "2026-02-01", "--out", str(out), "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert err[-1] == (
        "micromarketing fit: only 0 of 50 customers ordered again on a later day by 2026-02-01; "
        "at least 10 repeat buyers are needed to fit the models"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--calibration-end", "last tuesday"], "--calibration-end is not ISO-8601"),
        (
            ["--calibration-end", "2026-02-01", "--holdout-end", "2026-01-01"],
            "--holdout-end must be after",
        ),
        (["--calibration-end", "2026-02-01", "--from-topics"], "not both"),
    ],
)
def test_bad_arguments_get_a_reason(tmp_path, capsys, argv, message):
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"")
    code = main(["fit", str(events), "--out", str(tmp_path / "m.yaml"), *argv])
    assert code == 2 and message in capsys.readouterr().err


def test_a_missing_file_is_a_reason_not_a_traceback(tmp_path, capsys):
    code = main(
        ["fit", str(tmp_path / "nope.jsonl"), "--calibration-end", "2026-02-01", "--out", "m.yaml"]
    )
    assert code == 2 and "cannot read" in capsys.readouterr().err
