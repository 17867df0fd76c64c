"""Pages in a real headless browser: Debian's ``chromium``, driven by Playwright (never its own download).

``render(url)`` loads a page, lets its scripts run, and returns what a test asserts on:
the text a reader sees, the DOM, how many elements match some selectors, each image's
natural width (0: it did not load), the page's script errors, and every URL it asked for.
Requests to any host but the page's own (and loopback) are refused and listed in
``blocked``, so a page that needs the internet fails here as it would offline. Without
chromium the calling test is skipped, with the reason.

A DOM dump (``chromium --headless --dump-dom``) would need no driver, but it cannot say
whether an image loaded (``naturalWidth`` is no attribute) nor which URLs were asked for.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

CHROMIUM = shutil.which("chromium")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# what reaches the resolver anyway (a worker's fetch is not routed) finds no other host
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


@dataclass(frozen=True)
class Rendered:
    """A page after its scripts ran."""

    text: str  # what a reader sees (the body's innerText)
    html: str  # the DOM, serialized
    counts: dict[str, int]  # elements matching each selector asked for
    images: dict[str, int]  # each <img>'s URL and its naturalWidth: 0 if it did not load
    errors: list[str]  # uncaught script errors and console errors
    requested: list[str]  # every URL the page asked for, in order
    blocked: list[str]  # those refused: another host's


def render(url: str, wait_for: str | None = None, count: Sequence[str] = (), timeout_s: float = 30) -> Rendered:
    """``url`` rendered by headless chromium once the network is idle and ``wait_for`` (a CSS selector) is there."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: pages are tested in a real browser (Debian: apt-get install chromium)")
    allowed = LOOPBACK | {urlsplit(url).hostname}
    requested: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route: Route) -> None:
        requested.append(route.request.url)
        if urlsplit(route.request.url).hostname in allowed:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[OFFLINE])
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.route("**/*", only_local)
            page.goto(url, wait_until="networkidle")
            if wait_for is not None:
                page.wait_for_selector(wait_for)
            images = page.eval_on_selector_all("img", "all => all.map(i => [i.currentSrc || i.src, i.naturalWidth])")
            return Rendered(
                text=page.inner_text("body"),
                html=page.content(),
                counts={selector: page.locator(selector).count() for selector in count},
                images=dict(images),
                errors=errors,
                requested=requested,
                blocked=blocked,
            )
        finally:
            browser.close()
