"""The console page in a real headless Chromium over a console served in this process, fed
records directly (no broker): the campaign results panel with lift and CI (through a stand-in
for `streams.measure.results.CampaignResults`, another helper's module, with its documented
report shape), and empty states when a source is missing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp import web

from connectors.broker import free_port
from micromarketing.console.server import Config, Console
from micromarketing.console.state import ConsoleState
from streams.engine.events import iso
from tests.browser import open_page, screenshot

pytestmark = pytest.mark.integration

ARM = {
    "treated": 900, "holdout": 100, "converted_treated": 90, "converted_holdout": 6,
    "conversion_rate_treated": 0.1, "conversion_rate_holdout": 0.06,
    "revenue_per_trigger_treated": 8.0, "revenue_per_trigger_holdout": 4.5, "lift": 0.04,
    "lift_ci95": [0.0112, 0.0688], "relative_lift": 0.667, "p_value": 0.0213,
    "incremental_revenue": 3150.0,
}


class Results:
    """The documented interface of CampaignResults, answering a fixed report."""

    def __init__(self) -> None:
        self.triggers = 0
        self.untils: list[Any] = []

    def add_trigger(self, trigger: Mapping[str, Any]) -> None:
        self.triggers += 1

    def add_conversion(self, conversion: Mapping[str, Any]) -> None:
        pass

    def merge(self, other: Results) -> None:
        pass

    def report(self, until: Any = None) -> dict[str, dict[str, Any]]:
        self.untils.append(until)
        empty = dict.fromkeys(ARM, None) | {"treated": 3, "holdout": 0}
        return {
            "cart-abandonment": {**ARM, "offers": {"free-shipping": dict(ARM)}},
            "winback-60d": {**empty, "offers": {}},
        }


@contextmanager
def serve(state: ConsoleState) -> Iterator[str]:
    """The console's app for `state` on a free port, in a thread; yields its URL."""
    config = Config(bootstrap=f"127.0.0.1:{free_port()}", token="t")
    app = Console(config, state, threading.Lock()).app()
    port, ready, loop = free_port(), threading.Event(), asyncio.new_event_loop()

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_campaign_results_show_rates_lift_and_its_interval_per_offer() -> None:
    results = Results()
    state = ConsoleState(results)
    t0 = 1_767_225_600.0
    state.apply("triggers.retargeting", {
        "trigger_id": "a", "campaign": "cart-abandonment", "offer": "free-shipping",
        "consumer_id": "u1", "fired_at": iso(t0), "holdout": False, "rules_version": "v1"})
    with serve(state) as url, open_page() as (page, log):
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        table = page.inner_text("#campaigns-body")
        assert "cart-abandonment" in table and "free-shipping" in table
        assert "4.00 pt" in table and "[1.12, 6.88]" in table and "0.021" in table
        assert "10.0%" in table and "6.0%" in table
        row = page.query_selector("#campaigns-body tr:has-text('winback-60d')")
        assert row is not None and "–" in row.inner_text()  # no holdout: no lift
        # the interval is drawn, in green since it is above zero
        assert page.query_selector("#campaigns-body svg line[stroke='#15803d']") is not None
        screenshot(page, "console-campaigns.png")
        assert results.untils and all(u is None for u in results.untils)  # every trigger
        page.check("#closed-only")
        page.wait_for_selector("#campaigns-body >> text=triggers whose window closed by "
                               "2026-01-01T00:00:00.000Z", timeout=10_000)
        assert results.untils[-1].timestamp() == t0  # the latest event time read
    assert log.errors == [] and log.external_requests == []


def test_every_panel_has_an_empty_state_when_nothing_was_read() -> None:
    with serve(ConsoleState(None)) as url, open_page() as (page, log):
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        assert "no segment changes read yet" in page.inner_text("#segments-body")
        assert "no triggers read yet" in page.inner_text("#feed-body")
        assert "not available" in page.inner_text("#campaigns-body")
        assert "no rules known" in page.inner_text("#rules-body")
        assert "not connected" in page.inner_text("#status")
    assert log.errors == [] and log.external_requests == []
