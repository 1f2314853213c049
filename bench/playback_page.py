"""The play page in Chromium: how long from the click to the first picture, against fetching the same
bytes without the page (``bench/playback.py --mode page`` runs it on that script's footage and server).

Per round, in Debian's Chromium driven by Playwright, logged in as the bench's supervisor:

* **open**: the play page of a random 45 min range of the H.264 camera is loaded; from the navigation's
  start to the first decoded frame at the player's position (polled every 4 ms): page, scripts, the
  cameras, the stream's first fragment, MSE, decode.
* **seek**: a click on the timeline at a point not loaded yet (a new stream); from the click to the
  first decoded frame at that point.

Each is set against a plain HTTP client fetching the same URL (same session, same server) until it has
as many bytes as the page had received when the frame showed: ``ratio`` = page / fetch. The page's
own overhead is what the ratio says beyond 1.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import httpx

from tests.support.browser import CHROMIUM, FLAGS

# The first picture at media time near `want` (s; null: wherever the player starts), from `t0`
# (performance.now(), ms): the video has a decoded frame there (readyState >= 2, not seeking).
# Polled every 4 ms: requestVideoFrameCallback does not fire in headless Chromium.
_FIRST_FRAME = """([t0, want]) => new Promise((done, fail) => {
    const give_up = performance.now() + 30000;
    const poll = () => {
        const p = window.vauditPlayer, tile = p && p.tiles[0];
        if (performance.now() > give_up) {
            const v = tile && tile.feed.video;
            fail(new Error("no picture within 30 s: " + JSON.stringify(v ? {rs: v.readyState, t: v.currentTime,
                err: tile.feed.error, note: tile.note.textContent, b: [...Array(v.buffered.length).keys()].map(
                (i) => [v.buffered.start(i), v.buffered.end(i)]), now: (p.now() - p.zero) / 1000} : null)));
            return;
        }
        if (tile && tile.feed.stream) {
            const v = tile.feed.video, at = want === null ? (p.now() - p.zero) / 1000 : want;
            if (v.readyState >= 2 && !v.seeking && Math.abs(v.currentTime - at) < 2 && tile.feed.covers(p.zero + at * 1000)) {
                const s = tile.feed.stream;
                done({ms: performance.now() - t0, bytes: s.bytes, url: s.url});
                return;
            }
        }
        setTimeout(poll, 4);
    };
    poll();
})"""


def _plain_fetch(client: httpx.Client, url: str, nbytes: int) -> float:
    """Seconds to fetch the first ``nbytes`` of ``url`` with no page around it."""
    t = time.perf_counter()
    got = 0
    with client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(16384):
            got += len(chunk)
            if got >= nbytes:
                break
    return time.perf_counter() - t


def _summary(values: list[float]) -> dict[str, Any]:
    s = sorted(values)
    return {
        "n": len(s),
        "p50": round(s[len(s) // 2], 3),
        "p95": round(s[min(len(s) - 1, round(0.95 * (len(s) - 1)))], 3),
        "max": round(s[-1], 3),
        "mean": round(statistics.fmean(s), 3),
    }


def run(base: str, token: str, user: str, password: str, t0_ms: float, rounds: int) -> dict[str, Any]:
    """``rounds`` opens and seeks of the play page on 45 min of camera bench-h264's hour from ``t0_ms``."""
    from playwright.sync_api import sync_playwright

    rnd = random.Random(18)
    out: dict[str, dict[str, list[float]]] = {
        k: {"page_ms": [], "fetch_ms": [], "ratio": []} for k in ("open", "seek")
    }
    with (
        sync_playwright() as p,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=name]", user)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/search")
            span = 2700_000  # 45 min inside the hour of footage, so a seek 20-40 min on finds some
            for _ in range(rounds):
                lo = t0_ms + rnd.uniform(0, 900) * 1000
                iso = lambda ms: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))  # noqa: E731
                page.goto(f"{base}/play?camera=bench-h264&start={iso(lo)}&end={iso(lo + span)}")
                first = page.evaluate(_FIRST_FRAME, [0, None])
                fetch = _plain_fetch(client, first["url"], first["bytes"])
                _add(out["open"], first["ms"], fetch)
                # a click on the timeline 20-40 min on: not loaded yet
                frac = rnd.uniform(20, 40) / 45
                page.evaluate("""() => document.getElementById('scrubber').addEventListener('click',
                    () => { window.__clicked = performance.now(); }, {capture: true, once: true})""")
                track = page.locator("#scrubber")
                track.scroll_into_view_if_needed()
                box = track.bounding_box()
                assert box is not None
                track.click(position={"x": frac * box["width"], "y": 5})
                want = page.evaluate(
                    "(f) => { const p = window.vauditPlayer; return (p.lo + f * (p.hi - p.lo) - p.zero) / 1000; }",
                    frac,
                )
                clicked = page.evaluate("() => window.__clicked")
                seek = page.evaluate(_FIRST_FRAME, [clicked, want])
                fetch = _plain_fetch(client, seek["url"], seek["bytes"])
                _add(out["seek"], seek["ms"], fetch)
        finally:
            browser.close()
    return {
        kind: {
            "page_ms": _summary(v["page_ms"]),
            "fetch_same_bytes_ms": _summary(v["fetch_ms"]),
            "ratio": _summary(v["ratio"]),
        }
        for kind, v in out.items()
    }


def _add(into: dict[str, list[float]], page_ms: float, fetch_s: float) -> None:
    into["page_ms"].append(page_ms)
    into["fetch_ms"].append(fetch_s * 1000)
    into["ratio"].append(page_ms / max(fetch_s * 1000, 0.1))
