"""matplotlib without its docstrings (the page's child): the same SVG, for less work."""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.conftest import ROOT

#: draws every plot of the report; prints their digest and the length of two docstrings that
#: the page's process skips
DRAW = """
import hashlib, sys
lean = sys.argv[1] == "lean"
if lean:
    from streams.report import lean_import
    assert lean_import.install()
from streams.report import plots
from tests.unit.report.helpers import campaigns
days = ["2026-01-01", "2026-01-02", "2026-01-03"]
svg = [
    plots.segment_sizes(days, {"a": [1, 2, 3], "b": [0, 5, 4]}),
    plots.triggers_per_day(days, {"c": {"o1": [1, 0, 2], "o2": [3, 3, 3]}},
                           {"c": {"o1": [1, 1, 0]}}),
    plots.suppressions(days, {"cooldown": [1, 2, 0]}, {"c": {"cooldown": 3}}),
    plots.campaign_results(campaigns()),
]
import matplotlib.lines, numpy
doc = (matplotlib.lines.Line2D.set.__doc__ or "") + (numpy.ndarray.__doc__ or "")
print(hashlib.sha256("".join(svg).encode()).hexdigest(), len(doc))
"""


def _draw(mode: str) -> tuple[str, int]:
    done = subprocess.run([sys.executable, "-c", DRAW, mode], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    digest, doc = done.stdout.split()
    return digest, int(doc)


def test_a_process_that_skips_the_docstrings_draws_the_same_svg_as_one_that_writes_them() -> None:
    lean, lean_doc = _draw("lean")
    full, full_doc = _draw("full")
    assert lean == full
    # and the docstrings were skipped: were they not (a matplotlib that moved its hooks), the
    # page would still be right but this process would cost a third more
    assert full_doc > 1000 and lean_doc < 200


def test_it_is_too_late_once_matplotlib_or_numpy_is_imported() -> None:
    code = ("import sys, json; __import__(sys.argv[1]); from streams.report import lean_import; "
            "print(json.dumps([lean_import.install(), lean_import.install()]))")
    for first in ("matplotlib", "numpy", "json"):
        done = subprocess.run([sys.executable, "-c", code, first], capture_output=True,
                              cwd=ROOT, timeout=120, check=True)
        # done once at most, and only before either library is imported
        assert orjson.loads(done.stdout) == ([True, False] if first == "json" else [False, False])
