"""A real headless Chromium (Debian's `chromium`) driven by Playwright, for tests of web pages.

`.ci/run` installs the Debian package when it is missing; Playwright's own browser download is
never used (`executable_path` points at the system binary). Screenshots go to `ARTIFACTS`
(`test-artifacts/` at the repository root, or `$MICROMARKETING_ARTIFACTS`), kept after the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("MICROMARKETING_ARTIFACTS", ROOT / "test-artifacts"))

# without the background-networking flags Chromium keeps dialling Google's hosts, which this
# kind of machine refuses; --no-sandbox because CI runs as root
#: where a page may send requests: the project's own servers and the page itself
LOCAL = ("http://127.0.0.1", "http://localhost", "file:", "data:", "about:", "blob:")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The system Chromium, or None when it is not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLog:
    """What a page reported while it was open: console errors, page errors, failed requests."""

    errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)


@contextmanager
def open_page(*, width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, PageLog]]:
    """A fresh page in a new headless Chromium; every console error, uncaught exception and
    request to a host other than 127.0.0.1/localhost (or file:/data:) is recorded in the log
    (and such a request is aborted: the tests run offline)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    log = PageLog()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console", lambda m: log.errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda exc: log.errors.append(str(exc)))

            def _request(request: Any) -> None:
                if not request.url.startswith(LOCAL):
                    log.external_requests.append(request.url)

            def _outside(route: Any) -> None:  # recorded above; never sent (nothing to wait on)
                route.abort()

            page.on("request", _request)
            page.route(lambda url: not url.startswith(LOCAL), _outside)
            yield page, log
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    page.screenshot(path=str(out), full_page=True)
    return out
