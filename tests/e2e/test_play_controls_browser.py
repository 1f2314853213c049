"""The playback page's controls and times in Chromium, judged by the pictures (the timecoded
footage and the site of tests/e2e/test_playback_browser.py): times typed on the search page, the
play form and the export dialog are the centre's wall time (Shanghai) in a browser set to New
York; the language switch keeps the camera, the range and the moment; the keys and buttons step,
jump between events and change the speed of every camera of the room; the address names the moment
where the picture came to rest, and a reload opens there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest

from domain.types import iso
from tests.e2e.test_playback_browser import Site, _browser, _shown, _wait_shown, site
from tests.support.auth import PASSWORD
from tests.support.browser import keep_to, requires_chromium
from tests.support.timecode import at

pytestmark = [pytest.mark.browser, pytest.mark.integration]
__all__ = ["site"]  # the module's footage and case, used by name

RANGE = f"start={quote(iso(at(16)))}&end={quote(iso(at(100)))}"


def _open(browser: Any, site: Site, target: str, **context: Any) -> tuple[Any, list[str], list[str]]:
    ctx = browser.new_context(**context)
    foreign = keep_to(ctx, site.base)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{site.base}/login?next={quote(target)}")
    page.fill("input[name=name]", "zhang")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}{target}".split("?")[0] + "*")
    return page, errors, foreign


def _at(page: Any) -> float:
    """The moment the address names (at=), in seconds of the footage."""
    asked = parse_qs(urlparse(page.url).query)["at"][0]
    return (page.evaluate("(s) => Date.parse(s)", asked) - at(0).timestamp() * 1000) / 1000


def _paused(page: Any, camera: str, lo: float, hi: float) -> float:
    """The picture once it rests in [lo, hi] (a paused player still fetches and seeks)."""
    return _wait_shown(page, camera, lambda t: lo <= t <= hi)


@pytest.fixture
def browser() -> Iterator[Any]:
    with _browser() as b:
        yield b


@requires_chromium
def test_typed_times_are_the_centres_wall_time(site: Site, browser: Any) -> None:
    """New York is 12 hours behind Shanghai on 2024-05-01: read as the browser's time, every typed
    range would miss the footage by half a day."""
    page, errors, foreign = _open(browser, site, "/search", timezone_id="America/New_York")
    page.wait_for_selector('#q-room_id option[value="R-INT1"]', state="attached")
    page.select_option("#q-room_id", "R-INT1")
    page.fill("#q-start", "2024-05-01T09:00")  # at(0) in Shanghai
    page.fill("#q-end", "2024-05-01T09:01")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results a.case-link, #results p", timeout=15000)
    assert page.locator("#results a.case-link").count(), page.inner_text("#results") + page.url
    assert page.locator("#results a.case-link").all_inner_texts() == ["A1"]
    # the play form shows the range in the centre's wall time and reads what is typed the same way
    page.goto(f"{site.base}/play?camera=cam-a&{RANGE}")
    page.wait_for_selector("video.player")
    assert page.input_value("#play-form input[name=start]") == "2024-05-01T09:00:16"
    assert page.input_value("#play-form input[name=end]") == "2024-05-01T09:01:40"
    page.fill("#play-form input[name=start]", "2024-05-01T09:00:30")
    page.fill("#play-form input[name=end]", "2024-05-01T09:00:50")
    page.click("#play-form button[type=submit]")
    page.wait_for_url("**start=2024-05-01T01%3A00%3A30.000Z**")
    asked = parse_qs(urlparse(page.url).query)
    assert asked["end"] == ["2024-05-01T01:00:50.000Z"] and asked["camera"] == ["cam-a"], asked
    got = _wait_shown(page, "cam-a", lambda t: t >= 30)
    assert got < 34, got  # the picture of 09:00:30 Shanghai
    page.fill("#play-form input[name=end]", "2024-05-01T09:00:10")
    page.click("#play-form button[type=submit]")
    assert "结束时间须晚于开始时间" in page.inner_text("#play-form [role=alert]")
    # the export dialog: the plan's range (from the arrest at 0 s) in Shanghai's wall time
    page.goto(f"{site.base}/cases/{site.case_id}")
    page.click("button.export")
    page.wait_for_function(
        "() => document.querySelector('.export-from') && document.querySelector('.export-from').value"
    )
    assert page.input_value(".export-from") == "2024-05-01 09:00:00"
    assert not errors and not foreign, (errors, foreign)


@requires_chromium
def test_the_language_switch_keeps_the_page_where_it_is(site: Site, browser: Any) -> None:
    page, errors, foreign = _open(browser, site, f"/play?camera=cam-a&{RANGE}&case={site.case_id}")
    page.wait_for_selector("video.player")
    page.evaluate("(t) => window.vauditSeek(t)", at(40).timestamp() * 1000)
    _wait_shown(page, "cam-a", lambda t: 39.5 <= t < 45)
    page.click('nav a:has-text("English")')
    page.wait_for_url("**lang=en**")
    asked = parse_qs(urlparse(page.url).query)
    assert asked["camera"] == ["cam-a"] and asked["case"] == [str(site.case_id)], asked
    assert asked["start"] == [iso(at(16))] and asked["end"] == [iso(at(100))], asked
    assert 40 <= _at(page) < 41, asked  # and the moment
    page.wait_for_selector("video.player")
    _wait_shown(page, "cam-a", lambda t: 39.5 <= t < 45)
    assert "Play" in page.inner_text("#play-form")
    # back to Chinese, still there (the server's link, without the page's script)
    back = page.locator("nav a", has_text="中文").get_attribute("href") or ""
    assert parse_qs(back.lstrip("?"))["camera"] == ["cam-a"], back
    assert not errors and not foreign, (errors, foreign)


@requires_chromium
def test_keys_buttons_speed_and_the_moment_in_the_address(site: Site, browser: Any) -> None:
    page, errors, foreign = _open(
        browser,
        site,
        f"/play?room=R-INT1&{RANGE}&case={site.case_id}",
        permissions=["clipboard-read", "clipboard-write"],
    )
    page.wait_for_selector('video.player[data-camera="cam-b"]')
    _wait_shown(page, "cam-a", lambda t: t >= 16.5)
    page.locator("h1").click()  # the keys belong to the page
    page.keyboard.press(" ")  # pause
    assert page.inner_text("button.play-pause") == "播放"
    page.evaluate("(t) => window.vauditSeek(t)", at(30).timestamp() * 1000)
    assert 29.5 <= _paused(page, "cam-a", 29.5, 30.5) <= 30.5
    page.keyboard.press("ArrowRight")
    _paused(page, "cam-a", 39.5, 40.5)
    page.keyboard.press("Shift+ArrowLeft")  # a minute back: clamped to the range's start
    _paused(page, "cam-a", 15.9, 16.5)
    page.keyboard.press("Shift+ArrowRight")
    _paused(page, "cam-a", 75.5, 76.5)
    # loaded 23 s ahead (to the range's end), with the stretch before 76 s not loaded: a step back
    # into that hole must load it, not wait for what lies loaded ahead
    page.wait_for_function("""() => [...document.querySelectorAll('video.player')].every(v =>
        v.buffered.length && v.buffered.end(v.buffered.length - 1) - v.currentTime >= 23)""")
    page.click("button.back-10")
    _paused(page, "cam-a", 65.5, 66.5)
    # the same in its timing-free form (above, it fails only when the new stream's first read
    # brings the init segment alone): a stream from media 110 s whose first append brought no
    # picture keeps reading there, though a run loaded by the stream before lies ahead (120–144 s)
    reach = page.evaluate("""() => {
        const runs = [[60, 91], [120, 144]], s = {reach: 110};
        Feed.prototype.track.call({ranges: () => runs, want: 110, sb: {updating: true}}, s, runs);
        return s.reach;
    }""")
    assert reach == 110, reach
    _paused(page, "cam-b", 65.5, 66.5)
    page.click("button.fwd-10")
    _paused(page, "cam-a", 75.5, 76.5)
    # events: the interrogation's start (20 s) and end (90 s)
    page.click("button.next-event")
    _paused(page, "cam-a", 89.5, 90.5)
    page.click("button.prev-event")
    _paused(page, "cam-a", 19.5, 20.5)
    assert page.inner_text("button.play-pause") == "播放"  # still paused after all the jumps
    # the address names where the picture rests; the link to copy says the same; a reload opens there
    page.evaluate("(t) => window.vauditSeek(t)", at(62).timestamp() * 1000)
    rest = _paused(page, "cam-a", 61.5, 62.5)
    assert 62 <= _at(page) < 62.01, page.url
    assert page.get_attribute("#moment-link", "href") == page.url
    assert page.inner_text("#moment-link") == "此刻链接"
    page.click("#moment-link")  # copies the link, stays on the page
    page.wait_for_selector(".moment-said:has-text('已复制链接')")
    assert page.evaluate("() => navigator.clipboard.readText()") == page.url
    page.reload()
    page.wait_for_selector('video.player[data-camera="cam-b"]')
    first = _wait_shown(page, "cam-a", lambda t: True)
    assert 61.5 <= first < 66, (first, rest)  # not the range's start (16 s)
    # 2×: every camera of the room at that speed (each bends its rate by at most a fifth to keep up)
    page.select_option("select.speed", "2")
    _wait_shown(page, "cam-b", lambda t: t >= 64)
    rates = page.evaluate("() => [...document.querySelectorAll('video.player')].map(v => v.playbackRate)")
    assert len(rates) == 2 and all(1.6 <= r <= 2.4 for r in rates), rates
    a, b = _shown(page, "cam-a"), _shown(page, "cam-b")
    assert a is not None and b is not None and abs(a - b) < 1.5, (a, b)
    # the words of the controls, in zh-CN
    controls = page.inner_text(".player-controls")
    for words in ("后退10秒", "前进10秒", "上一事件", "下一事件", "倍速", "上档键"):
        assert words in controls, (words, controls)
    assert not errors and not foreign, (errors, foreign)
