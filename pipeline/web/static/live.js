// video-audit live page: a grid of rooms; each camera plays live fMP4 from a WebSocket through
// Media Source Extensions (pipeline/live_video.py), with its latency (now on the server's clock −
// the recorder's wall time of the frame on screen). Where MSE or the codec is missing, or the
// stream keeps failing, the camera falls back to keyframe stills (GET /api/v1/live/{camera}.jpg).
// Loaded after app.js on the live page; uses its helpers (h, api, T, root, LANG).
"use strict";

(() => {
  const LIVE_TEXT = {
    "zh-CN": { stills: "静态画面", connecting: "连接中", video: "实时视频", stalled: "无画面", behind: "画面滞后",
      behind_warn: "画面比当前时间晚 {t}，不是实时画面（网络、录像或摄像机时间异常）", min: "分", sec: "秒",
      recording_behind: "录像本身已落后服务器时钟 {t}：请检查摄像机时间和录像服务" },
    en: { stills: "stills", connecting: "connecting", video: "live video", stalled: "no picture", behind: "behind",
      behind_warn: "The picture is {t} behind now: not live (network, recording or the camera's clock)", min: "min", sec: "s",
      recording_behind: "The recording itself is {t} behind the server's clock: check the camera's clock and the recorder" },
  };
  const L = (k) => (LIVE_TEXT[LANG] && LIVE_TEXT[LANG][k]) || k;
  const CHASE_SECONDS = 1.0; // behind the newest buffered frame by more than this: jump to the edge
  const EDGE_SECONDS = 0.15; // where to land when jumping (a little before the newest frame)
  const KEEP_SECONDS = 20; // buffered media kept behind the playhead
  const MAX_FAILS = 3; // stream attempts without a frame before falling back to stills
  // Further behind than this, a picture is not "live": the tile says so and warns. Normal latency
  // is under 3 s (tests/e2e/test_web_browser.py); a stills camera's newest keyframe is one GOP old.
  const BEHIND_SECONDS = 10;
  // Interrogation and inquiry rooms first: the rooms a supervisor must see without scrolling.
  const ROOM_ORDER = { interrogation: 0, inquiry: 1 };

  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = "/static/live.css";
  document.head.append(css);

  const mseOk = (mime) => typeof window.MediaSource === "function" && MediaSource.isTypeSupported(mime);

  const ago = (s) => (s >= 60 ? `${Math.floor(s / 60)} ${L("min")} ${Math.round(s % 60)} ${L("sec")}` : `${Math.round(s)} ${L("sec")}`);

  // The tile's state follows its latency: far behind, it is not labelled live and warns.
  function showLatency(tile, ms) {
    tile.lat.dataset.ms = String(Math.round(ms));
    tile.lat.textContent = `${T("latency")} ${(ms / 1000).toFixed(1)} ${T("seconds")}`;
    const behind = ms / 1000 > BEHIND_SECONDS;
    tile.fig.dataset.behind = behind ? "1" : "0";
    tile.warn.hidden = !behind;
    if (behind) {
      const own = tile.edgeLagMs > BEHIND_SECONDS * 1000 ? ` ${L("recording_behind").replace("{t}", ago(tile.edgeLagMs / 1000))}` : "";
      tile.warn.textContent = L("behind_warn").replace("{t}", ago(ms / 1000)) + own;
      tile.state.textContent = L("behind");
    } else if (tile.live) tile.state.textContent = L(tile.mode === "stills" ? "stills" : "video");
  }
  function setState(tile, key) { // connecting, stalled: not (yet) a live picture
    tile.live = key === "video" || key === "stills";
    if (!(tile.live && tile.fig.dataset.behind === "1")) tile.state.textContent = L(key);
  }

  // --- keyframe stills (fallback) ---------------------------------------------------------------
  function startStills(tile) {
    if (tile.mode === "stills") return;
    tile.mode = "stills";
    tile.fig.dataset.mode = "stills";
    tile.video.hidden = true;
    tile.img.hidden = false;
    setState(tile, "stills");
    const once = async () => {
      try {
        const r = await fetch(`/api/v1/live/${encodeURIComponent(tile.id)}.jpg?t=${Date.now()}`,
          { credentials: "same-origin", cache: "no-store" });
        if (!r.ok) return;
        const url = URL.createObjectURL(await r.blob());
        const old = tile.img.src;
        tile.img.src = url;
        tile.img.dataset.frames = String(Number(tile.img.dataset.frames || 0) + 1);
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        const age = r.headers.get("X-Frame-Age");
        if (age) showLatency(tile, Number(age) * 1000);
      } catch (_) { /* next round */ }
    };
    once();
    setInterval(once, 1000);
  }

  // --- live video: WebSocket → MediaSource ------------------------------------------------------
  function startVideo(tile) {
    tile.mode = "video";
    tile.fig.dataset.mode = "video";
    setState(tile, "connecting");
    const video = tile.video;
    let offset = 0; // server clock − browser clock (ms), from the clock messages
    let origin = null; // wall time (ms) of media time 0 of the current stream
    let ms = null, sb = null, queue = [], fails = 0, gotFrames = false, sock = null;

    function newSource(mime) {
      if (video.src && video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
      ms = new MediaSource();
      sb = null;
      queue = [];
      video.src = URL.createObjectURL(ms);
      ms.addEventListener("sourceopen", () => {
        sb = ms.addSourceBuffer(mime);
        sb.mode = "segments"; // the fragments carry wall-clock media times
        sb.addEventListener("updateend", afterAppend);
        pump();
      }, { once: true });
    }

    function pump() {
      if (!sb || sb.updating || !queue.length || ms.readyState !== "open") return;
      const size = queue.reduce((n, b) => n + b.byteLength, 0);
      const joined = new Uint8Array(size);
      let at = 0;
      for (const b of queue) { joined.set(new Uint8Array(b), at); at += b.byteLength; }
      queue = [];
      try { sb.appendBuffer(joined); } catch (err) {
        // QuotaExceeded and the like: drop what is behind the playhead, the next append retries
        if (video.buffered.length) sb.remove(0, Math.max(0, video.currentTime - 1));
      }
    }

    function afterAppend() {
      const b = video.buffered;
      if (b.length) {
        const start = b.start(b.length - 1), end = b.end(b.length - 1);
        // Chase the live edge: at the start (media time 0 is not buffered), after a gap in the
        // recording, or when the player fell behind (a background tab, a slow decoder).
        if (video.currentTime < start || end - video.currentTime > CHASE_SECONDS) {
          video.currentTime = Math.max(start, end - EDGE_SECONDS);
        }
        if (!gotFrames) { gotFrames = true; fails = 0; setState(tile, "video"); }
        if (video.paused) video.play().catch(() => {});
        if (!sb.updating && video.currentTime - b.start(0) > 2 * KEEP_SECONDS) {
          sb.remove(0, video.currentTime - KEEP_SECONDS);
          return;
        }
      }
      pump();
    }

    function connect() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${proto}//${location.host}/api/v1/live/${encodeURIComponent(tile.id)}/video`);
      sock = ws;
      ws.binaryType = "arraybuffer";
      gotFrames = false;
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") {
          queue.push(ev.data);
          pump();
          return;
        }
        const m = JSON.parse(ev.data);
        if (typeof m.server_ms === "number") offset = m.server_ms - Date.now();
        if (m.type !== "hello") return;
        if (!mseOk(m.mime)) { ws.onclose = null; ws.close(); startStills(tile); return; }
        origin = m.origin_ms;
        tile.edgeLagMs = typeof m.edge_lag_ms === "number" ? m.edge_lag_ms : null;
        video.dataset.rendition = m.rendition;
        newSource(m.mime); // a new stream (first, or the producer restarted): a new source buffer
      };
      ws.onclose = () => {
        if (tile.mode !== "video") return;
        fails = gotFrames ? 0 : fails + 1;
        if (fails >= MAX_FAILS) { startStills(tile); return; }
        setState(tile, "connecting");
        setTimeout(connect, 1000);
      };
    }

    // A decode error kills the source buffer: reconnect, and the next hello brings a new one.
    video.addEventListener("error", () => {
      setState(tile, "stalled");
      gotFrames = false; // repeated decode errors count towards the stills fallback
      if (sock && sock.readyState <= WebSocket.OPEN) sock.close();
    });
    setInterval(() => {
      if (tile.mode !== "video" || origin === null || !gotFrames) return;
      showLatency(tile, Date.now() + offset - (origin + video.currentTime * 1000));
    }, 500);
    connect();
  }

  // --- the page -----------------------------------------------------------------------------------
  async function pageLiveVideo() {
    let rooms;
    try { rooms = (await api("/api/v1/live/rooms")).rooms; } catch (err) { root.append(errorBox(err)); return; }
    rooms = rooms.map((r, i) => [r, i]).sort(([a, i], [b, j]) =>
      ((ROOM_ORDER[a.kind] ?? 9) - (ROOM_ORDER[b.kind] ?? 9)) || i - j).map(([r]) => r);
    const grid = h("div", { class: "live-grid" });
    root.append(grid);
    const tiles = [];
    for (const r of rooms) {
      const who = h("ul", { class: "occupants" });
      // ALERT BADGES (room): filled by the risk-alert engine's page code (GET /api/v1/alerts,
      // SSE /api/v1/alerts/stream), keyed by data-alerts-for="room:<id>".
      const roomBadges = h("span", { class: "alert-badges", "data-alerts-for": `room:${r.id}` });
      const card = h("section", { class: "room", "data-room": r.id }, h("h2", {}, r.name, roomBadges), who);
      const fill = (list) => who.replaceChildren(...(list.length
        ? list.map((o) => h("li", {}, `${o.name}（${label("role", o.role)}）`)) : [h("li", { class: "muted" }, T("nobody"))]));
      fill(r.occupants);
      for (const c of r.cameras) {
        const video = h("video", { class: "live-video", "data-camera": c.id, muted: "", autoplay: "", playsinline: "" });
        video.muted = true;
        const img = h("img", { class: "live-frame", "data-camera": c.id, alt: c.name, hidden: "" });
        const lat = h("span", { class: "latency", "data-camera": c.id }, "");
        const state = h("span", { class: "live-state muted" }, "");
        const warn = h("div", { class: "live-behind", role: "alert", "data-camera": c.id, hidden: "" });
        // ALERT BADGES (camera): filled by the risk-alert engine's page code, data-alerts-for="camera:<id>".
        const badges = h("span", { class: "alert-badges", "data-alerts-for": `camera:${c.id}` });
        const fig = h("figure", { class: "live-tile", "data-camera": c.id }, video, img,
          h("figcaption", {}, c.name, " ", badges, " ", state, " ", lat, warn));
        card.append(fig);
        tiles.push({ id: c.id, video, img, lat, state, warn, badges, fig, mode: null, live: false });
      }
      card.fill = fill;
      grid.append(card);
    }
    // Without MSE at all (or no H.264 in it) the stills are the only way; otherwise the hello
    // message's exact codec decides per camera (see startVideo).
    const anyMse = mseOk('video/mp4; codecs="avc1.42e01e"');
    for (const t of tiles) (anyMse ? startVideo : startStills)(t);
    window.vauditLive = { tiles }; // for tests and for the alert badges' code

    async function occupancy() {
      try {
        const fresh = (await api("/api/v1/live/rooms")).rooms;
        for (const r of fresh) {
          const card = grid.querySelector(`[data-room="${CSS.escape(r.id)}"]`);
          if (card && card.fill) card.fill(r.occupants);
        }
      } catch (_) { /* next round */ }
    }
    setInterval(occupancy, 5000);
  }

  pageLiveVideo();
})();
