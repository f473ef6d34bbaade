"""report.html from `micromarketing replay`, opened in a real headless Chromium.

`MICROMARKETING_UPDATE_DOCS=1` also copies the screenshot of the bike-shop report to
docs/report.png (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import ROOT, open_page, screenshot
from tests.conftest import EXAMPLES
from tests.unit.report.helpers import campaigns

pytestmark = pytest.mark.e2e

PLOTS = ("plot-segment-sizes", "plot-triggers", "plot-suppressions")


def replay(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micromarketing", "replay", str(EXAMPLES / "events.jsonl"),
         "--rules", str(EXAMPLES / "rules.yaml"), "--out", str(out), "--no-progress", *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay")
    res = replay(out, "--close-at", "2027-02-01T00:00:00Z")  # as the README's backtest
    assert res.returncode == 0, res.stderr
    return out


def check_page(path: Path, plots: tuple[str, ...], shot: str) -> tuple[Path, str]:
    """Open a page; assert it loads clean and shows every plot; (screenshot, page text)."""
    with open_page() as (page, log):
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        for plot in plots:
            svg = page.locator(f"#{plot} svg")
            assert svg.count() == 1, plot
            box = svg.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100, (plot, box)
        text = page.inner_text("body")
        # the style sheet applies (its quoted font names too); on a 1400px window no table or
        # plot sticks out of the page's column, and no table needs its scroll bar (on a
        # narrower one a wide table scrolls inside the column)
        assert "system-ui" in page.evaluate("getComputedStyle(document.body).fontFamily")
        assert page.evaluate("""() => {
            const body = document.body.getBoundingClientRect();
            return [...document.querySelectorAll('table, figure')].filter(
                e => e.getBoundingClientRect().right > body.right + 1
                     || (e.tagName === 'TABLE' && e.scrollWidth > e.clientWidth + 1)
            ).map(e => e.id);
        }""") == []
        image = screenshot(page, shot)
    assert log.errors == [], log.errors
    assert log.external_requests == [], log.external_requests
    return image, text


def test_replay_writes_a_report_page_that_opens_offline_with_every_plot(replayed: Path) -> None:
    report = json.loads((replayed / "report.json").read_text())
    has_results = isinstance(report.get("campaigns"), dict) and bool(report["campaigns"])
    plots = (*PLOTS, "plot-results") if has_results else PLOTS
    image, text = check_page(replayed / "report.html", plots, "report.png")
    assert image.stat().st_size > 10_000
    assert "Segment sizes over time" in text and "Suppressions by reason" in text
    if not has_results:
        assert "This report has no campaign results" in text
    if os.environ.get("MICROMARKETING_UPDATE_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(image, ROOT / "docs" / "report.png")


def test_campaign_results_in_the_browser_show_the_table_and_the_lift_plot(
    replayed: Path, tmp_path: Path,
) -> None:
    from streams.report.html import write_report
    from streams.report.timeline import Timeline

    report = json.loads((replayed / "report.json").read_text())
    path = write_report(tmp_path, {**report, "campaigns": campaigns()},
                        Timeline.from_dir(replayed))
    _, text = check_page(path, (*PLOTS, "plot-results"), "report-with-campaigns.png")
    assert "would have bought anyway" in text and "[+5.0, +15.0] pts" in text


def test_no_html_writes_report_json_only(tmp_path: Path) -> None:
    res = replay(tmp_path, "--no-html")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "report.json").exists() and not (tmp_path / "report.html").exists()
