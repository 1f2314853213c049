// video-audit supervisor web: the player of the playback pages (play.js loads it). Cameras side by side
// on one wall clock, each fed through Media Source Extensions from the playback stream.
//
// Why MSE and not <video src>: the playback MP4 is built while it is sent, so its response has no
// Content-Length; Chromium then treats it as a stream and allows no seek but to 0 (seekable is
// [0, 0]): every seek back landed at the start of the range. Appended to a SourceBuffer, whatever
// was loaded can be sought, and the stream's origin (X-Playback-Origin) is read from the stream's
// own response headers: no probe request before the stream.
//
// Media time is one axis for every camera: (wall time − zero) / 1000, zero a minute before the
// first instant (timestampOffset places each stream on it), so one number says where every camera
// is. The clock is the page's own (performance.now), held while a camera that should play waits
// for data; each camera follows it (a seek past 0.35 s of drift, a slightly faster or slower
// rate below). A camera in a gap shows a card ("录像中断：<原因>") instead of a stale picture.
"use strict";

const PLAYER_TEXT = {
  "zh-CN": { gap: "录像中断", no_footage: "无录像", skip: "跳过", pause: "暂停", play: "播放", full: "全屏",
    tiles: "画面", enlarge: "放大", loading: "加载中", transfer: "转入", skip_gaps: "自动跳过无录像时段", clip: "执法记录仪",
    back10: "后退10秒", fwd10: "前进10秒", prev_event: "上一事件", next_event: "下一事件", speed: "倍速",
    keys: "快捷键：空格 播放/暂停；← → 10秒；上档键+← → 1分钟" },
  en: { gap: "Gap", no_footage: "No recording", skip: "Skip", pause: "Pause", play: "Play", full: "Full screen",
    tiles: "Tiles", enlarge: "Enlarge", loading: "loading", transfer: "Moved to", skip_gaps: "Skip stretches without footage",
    clip: "Body camera", back10: "−10 s", fwd10: "+10 s", prev_event: "Previous event", next_event: "Next event",
    speed: "Speed", keys: "Keys: space play/pause; ← → 10 s; Shift+← → 1 min" },
};
const PT = (k) => (PLAYER_TEXT[LANG] || PLAYER_TEXT["zh-CN"])[k] || k;
const ZERO_PAD_MS = 60000; // media time 0 lies this far before the player's first instant
const AHEAD_S = 30; // read a stream this far past the clock, then let it wait (the server waits too)
const KEEP_BEHIND_S = 300; // buffered media further behind the clock is dropped (SourceBuffer quota)
const SEEK_DRIFT_S = 0.35; // a camera further than this from the clock is sought; nearer, its rate bends
const SPEEDS = [0.5, 1, 1.5, 2, 4]; // the clock's rate: every camera of the scene follows it
const STEP_MS = 10000, BIG_STEP_MS = 60000; // ←/→ and the ±10 s buttons; with Shift, a minute

// "录像中断：连接中断"; a lost audio track is not a gap in the picture.
function gapText(g) {
  return `${g.cause === "audio_lost" ? label("cause", g.cause) : PT("gap") + (LANG === "en" ? ": " : "：") + label("cause", g.cause)}`;
}

// The end of the ftyp + moov at the start of a stream (null until all of it is there), and the MSE type.
function initEnd(buf) {
  let at = 0;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  while (at + 8 <= buf.length) {
    const size = dv.getUint32(at);
    const type = String.fromCharCode(...buf.subarray(at + 4, at + 8));
    if (size < 8 || at + size > buf.length) return null;
    at += size;
    if (type === "moov") return at;
  }
  return null;
}
function mimeOf(init) {
  const s = String.fromCharCode(...init);
  const i = s.indexOf("avcC");
  const hex = (n) => n.toString(16).padStart(2, "0");
  const video = i >= 0 ? `avc1.${hex(init[i + 5])}${hex(init[i + 6])}${hex(init[i + 7])}` : "avc1.42e01e";
  return `video/mp4; codecs="${video}${s.includes("mp4a") ? ", mp4a.40.2" : ""}"`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One camera (or body-camera clip) as a <video> fed by MSE; url(t) is the stream from wall time t.
class Feed {
  constructor(key, zero, url) {
    this.key = key; this.zero = zero; this.url = url;
    this.video = h("video", { muted: "", playsinline: "", preload: "auto", "data-camera": key, class: "player" });
    this.video.muted = true;
    this.media = new MediaSource();
    this.video.src = URL.createObjectURL(this.media);
    this.opened = new Promise((r) => this.media.addEventListener("sourceopen", r, { once: true }));
    this.sb = null; this.mime = null; this.stream = null; this.error = ""; this.want = 0;
  }
  m(t) { return (t - this.zero) / 1000; }
  ranges() {
    const b = this.video.buffered, out = [];
    for (let i = 0; i < b.length; i++) out.push([b.start(i), b.end(i)]);
    return out;
  }
  covers(t) { const m = this.m(t); return this.ranges().some(([a, b]) => m >= a - 0.05 && m < b - 0.1); }
  // The stream now loading will bring t soon: it started before t and has come within 8 s of it.
  coming(t) { const s = this.stream; return !!s && !s.done && s.from <= t + 500 && this.m(t) - s.reach < 8; }
  // The stream has ended and brought all there is up to t: nothing more will come for it.
  exhausted(t) { const s = this.stream; return !!s && s.done && !this.error && s.from <= t + 500 && this.m(t) >= s.reach - 0.15; }
  async idle() { while (this.sb && this.sb.updating) await new Promise((r) => this.sb.addEventListener("updateend", r, { once: true })); }
  async append(bytes) {
    for (let tries = 0; tries < 2; tries++) {
      await this.idle();
      try { this.sb.appendBuffer(bytes); await this.idle(); return; } catch (err) {
        if (err.name !== "QuotaExceededError") throw err;
        await this.idle();
        this.sb.remove(0, Math.max(0.1, this.want - 10)); // make room behind the clock
      }
    }
  }
  track(s, before) { // where the stream's data has come to: the end of the buffered run it is filling
    const runs = this.ranges();
    let moved = false;
    for (const [a, b] of runs) if (a <= s.reach + 0.2 && b > s.reach) { s.reach = b; moved = true; }
    // past a hole in the recording the data starts a run of its own further on: a run this append
    // made or grew, not one an earlier stream left ahead (a seek back into the hole before it would
    // take that run's end for this stream's and wait there, the picture stuck)
    const old = ([a, b]) => before.some(([x, y]) => Math.abs(x - a) < 1e-3 && Math.abs(y - b) < 1e-3);
    const next = runs.find((r) => r[0] > s.reach && !old(r));
    if (!moved && next) s.reach = next[1];
    const behind = this.ranges().find(([a]) => a < this.want - KEEP_BEHIND_S);
    if (behind && !this.sb.updating) this.sb.remove(0, this.want - KEEP_BEHIND_S + 60);
  }
  async load(t) {
    if (this.stream) this.stream.ctrl.abort();
    // bytes: what this stream brought so far (bench/playback_page.py compares it with a plain fetch)
    const s = { from: t, ctrl: new AbortController(), done: false, reach: this.m(t) - 1, bytes: 0, url: this.url(t) };
    this.stream = s;
    this.error = "";
    try {
      const r = await fetch(s.url, { credentials: "same-origin", signal: s.ctrl.signal });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        // the page's words for the refusal; the server's English message for whoever reports it
        this.error = errorText({ code: body.error && body.error.code });
        this.errorDetail = (body.error && body.error.message) || r.statusText;
        return;
      }
      const origin = ms(r.headers.get("X-Playback-Origin"));
      s.reach = this.m(origin);
      const reader = r.body.getReader();
      let head = new Uint8Array(0), before = [];
      for (;;) {
        while (s.reach - this.want > AHEAD_S && this.stream === s) await sleep(250);
        if (this.stream !== s) { reader.cancel().catch(() => {}); return; }
        const { value, done } = await reader.read();
        if (done) break;
        s.bytes += value.length;
        if (head !== null) { // the init segment first: the type, then where this stream sits on the axis
          const joined = new Uint8Array(head.length + value.length);
          joined.set(head); joined.set(value, head.length);
          const end = initEnd(joined);
          if (end === null) { head = joined; continue; }
          head = null;
          await this.opened;
          const mime = mimeOf(joined.subarray(0, end));
          if (!this.sb) { this.sb = this.media.addSourceBuffer(mime); this.mime = mime; }
          await this.idle();
          this.sb.abort(); // the previous stream may have stopped inside a fragment
          if (mime !== this.mime && this.sb.changeType) { this.sb.changeType(mime); this.mime = mime; }
          this.sb.timestampOffset = this.m(origin);
          before = this.ranges();
          await this.append(joined);
        } else { before = this.ranges(); await this.append(value); }
        this.track(s, before);
      }
    } catch (err) {
      if (err.name !== "AbortError" && this.stream === s) {
        this.error = errorText(err);
        this.errorDetail = String(err.message || err);
      }
    } finally { s.done = true; }
  }
  close() {
    if (this.stream) this.stream.ctrl.abort();
    this.stream = null;
    URL.revokeObjectURL(this.video.src);
  }
}

// Where a camera is at an instant: footage, a gap (with its cause) or nothing recorded.
function stateAt(tile, t) {
  if (t < tile.start || t >= tile.end) return { kind: "none" };
  const g = tile.gaps.find((x) => ms(x.start) <= t && t < ms(x.end) && x.cause !== "audio_lost");
  if (g) return { kind: "gap", gap: g };
  if (tile.segs === null) return { kind: "footage" }; // not known yet: try
  return tile.segs.some(([a, b]) => a <= t && t < b) ? { kind: "footage" } : { kind: "none" };
}

// The player. scenes: [{start, end, title, tiles: [{key, title, url(t), start, end, gaps, segs}]}] in time
// order; one scene is on screen at a time (a room's cameras; the arrest clip), the clock runs across them.
class Player {
  constructor(scenes, opts = {}) {
    this.scenes = scenes;
    this.lo = scenes[0].start; this.hi = Math.max(...scenes.map((x) => x.end));
    this.zero = this.lo - ZERO_PAD_MS;
    this.rate = 1; this.playing = true; this.skipGaps = true;
    this.base = this.lo; this.perf = performance.now(); this.held = false;
    this.onTime = opts.onTime || (() => {});
    this.onScene = opts.onScene || (() => {});
    // where the picture came to rest (a jump, a pause, the end): the page writes it into its address
    this.onMoment = opts.onMoment || (() => {});
    this.events = []; // event times (ms, sorted) for previous/next event
    this.scene = null; this.tiles = []; this.layout = 4;
    this.grid = h("div", { class: "videos", id: "player-grid" });
    this.banner = h("div", { class: "transfer-banner", role: "status" });
    this.clock = h("div", { class: "clock", id: "wall-clock" }, "—");
    this.playBtn = h("button", { type: "button", class: "play-pause" }, PT("pause"));
    this.playBtn.onclick = () => this.setPlaying(!this.playing);
    const layouts = [1, 2, 4].map((n) => {
      const b = h("button", { type: "button", class: "layout", "data-tiles": n }, String(n));
      b.onclick = () => { this.layout = n; this.arrange(); };
      return b;
    });
    const full = h("button", { type: "button", class: "fullscreen" }, PT("full"));
    full.onclick = () => (document.fullscreenElement ? document.exitFullscreen() : this.el.requestFullscreen()).catch(() => {});
    const skip = h("input", { type: "checkbox", class: "skip-gaps", checked: "" });
    skip.onchange = () => { this.skipGaps = skip.checked; };
    // a clicked control gives the keys back to the page (space would click it again)
    const btn = (cls, text, act) => {
      const b = h("button", { type: "button", class: cls }, text);
      b.onclick = () => { act(); b.blur(); };
      return b;
    };
    this.evButtons = [btn("prev-event", PT("prev_event"), () => this.jumpEvent(-1)),
      btn("next-event", PT("next_event"), () => this.jumpEvent(1))];
    this.evButtons.forEach((b) => { b.hidden = true; });
    this.speed = h("select", { class: "speed", title: PT("speed") },
      SPEEDS.map((x) => h("option", { value: x, ...(x === 1 ? { selected: "" } : {}) }, `${x}×`)));
    this.speed.onchange = () => { this.setRate(Number(this.speed.value)); this.speed.blur(); };
    this.controls = h("div", { class: "player-controls" }, btn("back-10", PT("back10"), () => this.step(-STEP_MS)),
      this.playBtn, btn("fwd-10", PT("fwd10"), () => this.step(STEP_MS)), this.evButtons, this.clock,
      h("label", {}, PT("speed"), " ", this.speed),
      h("span", { class: "layouts" }, `${PT("tiles")}: `, layouts), full, h("label", {}, skip, " ", PT("skip_gaps")),
      h("span", { class: "keys" }, PT("keys")));
    this.el = h("div", { class: "player-box" }, this.controls, this.banner, this.grid);
    this.timer = setInterval(() => this.tick(), 100);
    document.addEventListener("keydown", (ev) => this.key(ev));
  }
  now() { return this.playing && !this.held ? this.base + (performance.now() - this.perf) * this.rate : this.base; }
  rebase(t) { this.base = t; this.perf = performance.now(); }
  setPlaying(on) {
    this.rebase(this.now()); this.playing = on; this.playBtn.textContent = PT(on ? "pause" : "play"); this.tick();
    if (!on) this.onMoment(this.now());
  }
  setRate(r) {
    this.rebase(this.now()); this.rate = r;
    if (Number(this.speed.value) !== r) this.speed.value = String(r);
    this.tick();
  }
  seek(t) {
    this.rebase(Math.max(this.lo, Math.min(this.hi, t)));
    this.held = false;
    this.onMoment(this.base);
    this.tick();
  }
  step(d) { this.seek(this.now() + d); }
  setEvents(times) {
    this.events = [...times].sort((a, b) => a - b);
    this.evButtons.forEach((b) => { b.hidden = !this.events.length; });
  }
  // "previous" passes over the event just played from (the picture has moved on a little since)
  jumpEvent(dir) {
    const t = this.now();
    const to = dir > 0 ? this.events.find((e) => e > t + 50) : [...this.events].reverse().find((e) => e < t - 1500);
    if (to !== undefined) this.seek(to);
  }
  key(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !this.el.isConnected) return;
    if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
    if (ev.key === " " && ev.target.closest && ev.target.closest("button, a")) return; // its own click
    const big = ev.shiftKey ? BIG_STEP_MS : STEP_MS;
    const act = { " ": () => this.setPlaying(!this.playing), ArrowLeft: () => this.step(-big), ArrowRight: () => this.step(big) }[ev.key];
    if (act) { ev.preventDefault(); act(); }
  }
  hold(on) { if (on !== this.held) { this.rebase(this.now()); this.held = on; } }
  // Where two scenes overlap (the arrest clip runs on into the entry room's first seconds), the
  // later one has taken over: a transfer begins when the next room's footage does. Taking the
  // earlier one skipped the entry room once the clip's stream ended (the skip looks ahead).
  sceneAt(t) { return this.scenes.findLast((s) => s.start <= t && t < s.end) || null; }
  mount(scene) {
    for (const tile of this.tiles) tile.feed.close();
    this.tiles = [];
    this.grid.replaceChildren();
    const before = this.scene;
    this.scene = scene;
    if (!scene) return;
    if (before) { // a transfer between rooms: say where the subject went
      this.banner.textContent = `${PT("transfer")} ${scene.title}`;
      this.banner.classList.add("shown");
      setTimeout(() => this.banner.classList.remove("shown"), 4000);
    }
    for (const spec of scene.tiles) {
      const feed = new Feed(spec.key, this.zero, spec.url);
      if (spec.vtt) { // the wall time and gaps as subtitles, its cues on the player's media axis
        feed.video.append(h("track", { kind: "subtitles", label: T("time"), srclang: LANG === "en" ? "en" : "zh", default: "",
          src: `${spec.vtt}&origin=${encodeURIComponent(isoOf(this.zero))}&lang=${encodeURIComponent(LANG)}` }));
      }
      const card = h("div", { class: "gap-card", hidden: "" });
      const note = h("div", { class: "play-error", role: "alert" });
      const big = h("button", { type: "button", class: "enlarge", title: PT("enlarge") }, "⤢");
      const fig = h("figure", { "data-camera": spec.key, class: "tile" }, feed.video, card,
        h("figcaption", {}, spec.title, " ", big), note);
      big.onclick = () => { const on = !fig.classList.contains("big"); this.tiles.forEach((x) => x.fig.classList.remove("big")); fig.classList.toggle("big", on); };
      feed.video.addEventListener("error", () => { if (!note.textContent) note.textContent = T("play_stopped"); });
      this.grid.append(fig);
      this.tiles.push(Object.assign(spec, { feed, fig, card, note, shown: null })); // segs and gaps may come later
    }
    this.arrange();
    this.onScene(scene);
  }
  arrange() {
    this.grid.dataset.tiles = String(Math.min(this.layout, this.tiles.length));
    this.tiles.forEach((x, i) => { x.fig.hidden = i >= this.layout && !x.fig.classList.contains("big"); });
  }
  showCard(tile, st) {
    const key = st.kind === "gap" ? `gap:${st.gap.start}` : st.kind;
    if (tile.shown === key) return;
    tile.shown = key;
    tile.feed.video.style.visibility = st.kind === "footage" ? "" : "hidden";
    tile.card.hidden = st.kind === "footage";
    if (st.kind === "footage") return;
    const skip = h("button", { type: "button", class: "skip-gap" }, PT("skip"));
    const until = st.kind === "gap" ? ms(st.gap.end) : this.nextFootage(tile, this.now());
    skip.onclick = () => this.seek(until);
    tile.card.replaceChildren(h("strong", {}, st.kind === "gap" ? gapText(st.gap) : PT("no_footage")),
      st.kind === "gap" ? h("span", {}, `${fmt(st.gap.start)} – ${fmt(st.gap.end)}`) : "",
      until && until < this.hi ? skip : "");
  }
  // The next instant a tile (or, without one, any tile of the scene) has footage.
  nextFootage(tile, t) {
    const tiles = tile ? [tile] : this.tiles;
    let best = null;
    for (const x of tiles) {
      for (const g of x.gaps) if (ms(g.start) <= t && t < ms(g.end)) best = Math.min(best ?? Infinity, ms(g.end));
      for (const [a] of x.segs || []) if (a > t) { best = Math.min(best ?? Infinity, a); break; }
    }
    return best;
  }
  tick() {
    let t = this.now();
    if (t >= this.hi) { t = this.hi; if (this.playing) this.setPlaying(false); }
    const scene = this.sceneAt(t) || (t >= this.hi ? this.scenes[this.scenes.length - 1] : null);
    if (!scene) { // between stays (nobody recorded where the subject was): on to the next
      const next = this.scenes.find((s) => s.start > t);
      if (next) { this.seek(next.start); return; }
    }
    if (scene !== this.scene) this.mount(scene);
    let waiting = false, footage = false;
    const want = (t - this.zero) / 1000;
    const ready = [];
    for (const tile of this.tiles) {
      const f = tile.feed, v = f.video;
      let st = stateAt(tile, t);
      // the index says footage, but the stream ended just before t (a clip a little shorter than its record)
      if (st.kind === "footage" && !f.covers(t) && f.exhausted(t)) st = { kind: "none" };
      f.want = want;
      this.showCard(tile, st);
      if (f.error) { tile.note.textContent = f.error; tile.note.title = f.errorDetail || ""; }
      if (st.kind !== "footage") { if (!v.paused) v.pause(); continue; }
      footage = true;
      if (!f.covers(t)) {
        if (!f.coming(t) && !f.error) f.load(t);
        if (!f.error) waiting = true;
        if (!v.paused) v.pause();
        continue;
      }
      const drift = v.currentTime - want;
      if (v.seeking) { waiting = true; continue; }
      if (Math.abs(drift) > SEEK_DRIFT_S) { v.currentTime = want; waiting = true; continue; }
      v.playbackRate = this.rate * Math.max(0.8, Math.min(1.2, 1 - drift));
      if (v.readyState < 3) waiting = true;
      ready.push(v);
    }
    // All together or none: a camera that waits for data holds the clock and the others with it.
    for (const v of ready) {
      if (this.playing && !waiting && v.paused) v.play().catch(() => {});
      else if ((!this.playing || waiting) && !v.paused) v.pause();
    }
    this.hold(waiting);
    if (!footage && this.playing && this.skipGaps) {
      const next = this.nextFootage(null, t);
      const after = this.scenes.find((s) => s.start > t);
      const to = Math.min(next ?? Infinity, after ? after.start : Infinity);
      if (Number.isFinite(to) && to > t) { this.seek(to); return; }
    }
    this.clock.textContent = fmt(isoOf(t));
    this.clock.dataset.ms = String(Math.round(t));
    this.onTime(t);
  }
}
