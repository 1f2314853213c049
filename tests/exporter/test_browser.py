"""The disc's page opens offline from the extracted disc in headless Chromium and plays video."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.exporter.conftest import Exported
from tests.support.browser import CHROMIUM, FLAGS, keep_to, requires_chromium

pytestmark = pytest.mark.browser


@requires_chromium
def test_page_opens_offline_and_plays_the_first_video(exported: Exported, tmp_path: Path) -> None:
    index = exported.extracted / "index.html"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = browser.new_context(offline=True)
            foreign = keep_to(ctx, "file://")
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(index.as_uri())
            page.wait_for_function("document.querySelectorAll('video').length > 0", timeout=15000)
            result = page.evaluate("""async () => {
                const v = document.querySelector('video'); v.muted = true;
                try { await v.play(); } catch (e) { return {error: 'play: ' + e}; }
                const t0 = v.currentTime;
                for (let i = 0; i < 50 && v.currentTime < 1.0; i++)
                    await new Promise(r => setTimeout(r, 100));
                return {t0, t1: v.currentTime, mediaError: v.error && v.error.code, src: v.currentSrc,
                        gaps: document.querySelectorAll('.gapnote').length,
                        title: document.getElementById('title').textContent,
                        disc: window.DISC && window.DISC.label};
            }""")
            assert "error" not in result, result
            assert result["mediaError"] is None
            assert result["t1"] > result["t0"] and result["t1"] >= 1.0, result
            assert result["src"].endswith("videos/01-arrest/bodycam-BC01.mp4")
            assert result["gaps"] == 1 and "张某" in result["title"]
            assert result["disc"] == "A4401012024050001_M_1OF1"
            page.click("#lang")
            assert page.inner_text("h2[data-t=overview]") == "Overview"
            assert not errors and not foreign, (errors, foreign)
        finally:
            browser.close()
