"""The disc's page opens offline from the extracted disc in headless Chromium and plays video."""

from __future__ import annotations

import re
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


TIME_CODE_AND_CHAPTERS = """async () => {
    const sleep = ms => new Promise(r => setTimeout(r, ms));
    const v = [...document.querySelectorAll('video')].find(x => x.dataset.path.includes('cam-int'));
    if (!v) return {error: 'no cam-int video'};
    v.muted = true;
    try { await v.play(); } catch (e) { return {error: 'play: ' + e}; }
    let subs = null;
    for (let i = 0; i < 100; i++) {
        subs = [...v.textTracks].find(t => t.kind === 'subtitles' && t.mode === 'showing');
        if (subs && subs.activeCues && subs.activeCues.length) break;
        await sleep(100);
    }
    v.pause();
    const chapters = [...v.textTracks].find(t => t.kind === 'chapters');
    const texts = list => list ? [...list].map(c => c.text) : [];
    return {
        active: subs ? texts(subs.activeCues) : [],
        cues: subs && subs.cues ? subs.cues.length : 0,
        chapterCues: chapters ? texts(chapters.cues) : [],
        chapterList: [...v.parentElement.querySelectorAll('ul.chapters a')]
            .filter(a => a.dataset.path === v.dataset.path).map(a => a.textContent),
    };
}"""


@requires_chromium
def test_page_shows_time_code_and_chapters_from_file_url(exported: Exported) -> None:
    """Chromium refuses <track src> from a file:// page (each file is its own origin); the page
    must still show the wall-clock time code and the chapters, in one language at a time."""
    index = exported.extracted / "index.html"
    entry = next(
        f for f in exported.manifest["files"] if f["role"] == "subtitles" and f["camera"] == "cam-int"
    )
    vtt_cues = (exported.extracted / entry["path"]).read_text(encoding="utf-8").count(" --> ")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = browser.new_context(offline=True)
            foreign = keep_to(ctx, "file://")
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(index.as_uri())
            page.wait_for_function("document.querySelectorAll('video').length > 0", timeout=15000)
            zh = page.evaluate(TIME_CODE_AND_CHAPTERS)
            assert "error" not in zh, zh
            assert zh["cues"] == vtt_cues, zh  # every cue of the .vtt beside the video
            assert zh["active"] and re.match(r"2024-05-01 09:00:\d\d", zh["active"][0]), zh
            assert zh["chapterCues"] == zh["chapterList"], zh
            assert zh["chapterList"][0] == "开始" and any("连接中断" in c for c in zh["chapterList"]), zh
            assert not any(re.search("[A-Za-z]", c) for c in zh["chapterList"]), zh  # zh-CN only
            page.click("#lang")
            en = page.evaluate(TIME_CODE_AND_CHAPTERS)
            assert en["chapterList"][0] == "Start" and en["chapterCues"] == en["chapterList"], en
            assert not any(re.search("[\u4e00-\u9fff]", c) for c in en["chapterList"]), en
            assert en["active"] and re.match(r"2024-05-01 09:00:\d\d", en["active"][0]), en
            assert not errors and not foreign, (errors, foreign)
        finally:
            browser.close()
