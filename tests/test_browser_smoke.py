"""The browser harness itself: a page's console errors and outside requests are caught."""

from __future__ import annotations

from tests.browser import open_page


def test_a_console_error_and_an_outside_request_are_recorded() -> None:
    with open_page() as (page, log):
        page.set_content("<p>x</p><script>console.error('boom')</script>")
        page.evaluate("fetch('http://example.invalid/x').catch(() => null)")
        page.wait_for_timeout(200)
    assert log.errors and "boom" in log.errors[0]
    assert any("example.invalid" in u for u in log.external_requests)
