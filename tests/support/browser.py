"""Debian's Chromium for the browser tests (marker ``browser``), driven through Playwright's API
(Playwright's own browser download is never used):

    @requires_chromium
    def test_page(...):
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless (Playwright's default), no sandbox (containers), nothing fetched from the network
# behind the test's back, and video that may play before any user gesture.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
requires_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")


def keep_to(context: Any, prefix: str, foreign: list[str] | None = None) -> list[str]:
    """Let the pages of a Playwright browser ``context`` load only URLs starting with ``prefix``:
    any other request is aborted and listed in ``foreign`` (a new list unless given: several
    contexts can share one), which is returned for the test to expect empty."""
    foreign = [] if foreign is None else foreign

    def route(r: Any) -> None:
        if r.request.url.startswith(prefix):
            r.continue_()
        else:
            foreign.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return foreign
