"""`micromarketing fit` reproduces the published CDNOW figures from the raw purchases."""

from __future__ import annotations

import csv
import time

import pytest
import yaml

from micromarketing.cli import main
from streams.engine.bgnbd import order_day
from streams.engine.events import parse_time
from streams.fit.history import read_history, summarize
from tests.unit.fit.cdnow import SUMMARY, write_events

CALIBRATION_END = "1997-09-30"


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    path = tmp_path_factory.mktemp("cdnow") / "events.jsonl"
    assert write_events(path) == 6919
    return path


def test_per_day_summaries_are_the_published_ones(events):
    # x = repeat purchase days, t_x and T in weeks, zbar = mean value of the repeat days
    days = read_history(events.read_bytes().splitlines()).days()
    customers = {c.id: c for c in summarize(days, order_day(parse_time(CALIBRATION_END)))}
    assert len(customers) == 2357
    with SUMMARY.open() as f:
        for row in csv.DictReader(f):
            c = customers[f"cdnow-{int(row['ID']):04d}"]
            assert c.x == int(row["x"])
            assert (c.t_x, c.T, c.mean) == pytest.approx(
                (float(row["t_x"]), float(row["T"]), float(row["zbar"])), abs=0.0051
            )


def test_fit_reproduces_the_published_cdnow_parameters(events, tmp_path, capsys):
    out = tmp_path / "models.yaml"
    started = time.perf_counter()
    code = main(
        ["fit", str(events), "--calibration-end", CALIBRATION_END,
         "--holdout-end", "1998-06-30", "--out", str(out), "--no-progress"]
    )
    elapsed = time.perf_counter() - started
    assert code == 0
    assert elapsed < 20
    doc = yaml.safe_load(out.read_text())
    bg, gg = doc["bgnbd"], doc["gamma_gamma"]
    # Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426, LL -9582.4
    assert round(bg["r"], 3) == 0.243 and round(bg["alpha"], 3) == 4.414
    assert round(bg["a"], 3) == 0.793 and round(bg["b"], 3) == 2.426
    assert round(bg["log_likelihood"], 1) == -9582.4 and bg["customers"] == 2357
    # Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013): p 6.25, q 3.74, v 15.44
    assert round(gg["p"], 2) == 6.25 and round(gg["q"], 2) == 3.74
    assert round(gg["v"], 2) == 15.44 and gg["customers"] == 946
    assert doc["calibration_end"] == CALIBRATION_END and doc["model"] == "bgnbd"
    assert set(doc["standard_errors"]["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert all(0 < e < 1 for e in (doc["standard_errors"]["bgnbd"]["r"],))
    shown = capsys.readouterr().out
    assert "holdout 1997-09-30 .. 1998-06-30" in shown and "7+" in shown
    plot = (tmp_path / "models.holdout.html").read_text()
    assert plot.startswith("<!doctype html>") and "<svg" in plot and "http" not in plot.split(
        "<svg", 1)[1].replace('xmlns="http://www.w3.org/2000/svg"', "")
