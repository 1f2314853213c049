// video-audit supervisor web: the playback page. Loaded after app.js, whose helpers (h, api, T, fmt, ms, isoOf,
// errorBox, root, LANG, TZ, CSRF) it uses: top-level names of classic scripts are shared.
"use strict";

// --- playback ----------------------------------------------------------------------------------

async function pagePlay() {
  const q = new URLSearchParams(location.search);
  let start = q.get("start"), end = q.get("end");
  const caseId = q.get("case");
  let cams = [];
  let allCams = [];
  try { allCams = (await api("/api/v1/cameras")).cameras; } catch (err) {
    // Officers may not list cameras: they play their case's rooms, whose cameras the case timeline names.
    if (!caseId) { root.append(errorBox(err)); return; }
    try {
      const tl = await api(`/api/v1/cases/${caseId}/timeline`);
      const seen = new Map();
      for (const sj of tl.subjects) for (const st of sj.stays) for (const c of st.cameras) {
        seen.set(c.camera_id, { id: c.camera_id, name: c.camera_id, room_id: st.stay.room_id, room_name: st.stay.room_id });
      }
      allCams = [...seen.values()];
    } catch (err2) { root.append(errorBox(err2)); return; }
  }
  if (q.get("camera")) cams = allCams.filter((c) => c.id === q.get("camera"));
  else if (q.get("room")) cams = allCams.filter((c) => c.room_id === q.get("room"));
  const pick = h("form", { id: "play-form" },
    h("label", {}, T("camera"), " ", h("select", { name: "camera" }, allCams.map((c) =>
      h("option", { value: c.id, ...(cams[0] && cams[0].id === c.id ? { selected: "" } : {}) }, `${c.room_name} / ${c.name}`)))),
    h("label", {}, T("from"), " ", h("input", { name: "start", type: "datetime-local", step: 1 })),
    h("label", {}, T("to"), " ", h("input", { name: "end", type: "datetime-local", step: 1 })),
    h("button", { type: "submit" }, T("play")));
  pick.onsubmit = (ev) => {
    ev.preventDefault();
    const f = new FormData(pick);
    const p = new URLSearchParams({ camera: f.get("camera") });
    p.set("start", f.get("start") ? isoOf(f.get("start")) : start || isoOf(Date.now() - 600000));
    p.set("end", f.get("end") ? isoOf(f.get("end")) : end || isoOf(Date.now()));
    location.search = p.toString();
  };
  root.append(pick);
  if (!cams.length || !start || !end) return;
  const lo = ms(start), hi = ms(end);
  const grid = h("div", { class: "videos" });
  const clock = h("div", { class: "clock", id: "wall-clock" }, "—");
  const bar = h("div", { class: "scrubber", id: "scrubber" });
  const evList = h("div", { class: "jump" });
  root.append(clock, grid, bar, evList);
  const players = cams.map((c) => {
    const v = h("video", { controls: "", muted: "", playsinline: "", preload: "auto", "data-camera": c.id, class: "player" });
    v.muted = true;
    const note = h("div", { class: "play-error", role: "alert" });
    // a segment that fails its hash check is not played: say so on the player, not just stop
    v.addEventListener("error", () => { if (!note.textContent) note.textContent = T("play_stopped"); });
    grid.append(h("figure", {}, v, h("figcaption", {}, `${c.room_name} / ${c.name}`), note));
    return { cam: c, video: v, origin: lo, note };
  });
  const master = players[0].video;
  const forCase = caseId ? `&case_id=${encodeURIComponent(caseId)}` : ""; // officers play through their case
  async function load(from) {
    await Promise.all(players.map(async (p) => {
      const qs = `start=${encodeURIComponent(isoOf(from))}&end=${encodeURIComponent(end)}${forCase}`;
      try {
        // A one-byte range tells where the stream's time 0 is (the keyframe at or before "from").
        const r = await fetch(`/api/v1/playback/${p.cam.id}.mp4?${qs}`, { headers: { Range: "bytes=0-0" }, credentials: "same-origin" });
        p.origin = r.ok ? ms(r.headers.get("X-Playback-Origin")) : from;
        p.note.textContent = "";
        if (r.status === 409) p.note.textContent = ((await r.json()).error || {}).message || T("play_stopped");
      } catch (_) { p.origin = from; }
      p.video.replaceChildren(h("track", { kind: "subtitles", label: "time", srclang: "zh", default: "",
        src: `/api/v1/playback/${p.cam.id}.vtt?${qs}&origin=${encodeURIComponent(isoOf(p.origin))}` }));
      p.video.src = `/api/v1/playback/${p.cam.id}.mp4?${qs}`;
    }));
    master.play().catch(() => {});
  }
  const wallNow = () => players[0].origin + master.currentTime * 1000;
  function seekWall(t) {
    // Inside what the master has buffered: a plain seek; elsewhere: a new stream from that time.
    const rel = (t - players[0].origin) / 1000;
    const b = master.buffered;
    for (let i = 0; i < b.length; i++) {
      if (rel >= b.start(i) && rel <= b.end(i)) {
        for (const p of players) p.video.currentTime = (t - p.origin) / 1000;
        return;
      }
    }
    load(t);
  }
  master.addEventListener("timeupdate", () => {
    const t = wallNow();
    clock.textContent = fmt(isoOf(t));
    cursor.style.left = `${((t - lo) / (hi - lo)) * 100}%`;
    for (const p of players.slice(1)) {
      const want = (t - p.origin) / 1000;
      if (Math.abs(p.video.currentTime - want) > 0.3) p.video.currentTime = Math.max(0, want);
      if (p.video.paused && !master.paused) p.video.play().catch(() => {});
    }
  });
  master.addEventListener("pause", () => players.slice(1).forEach((p) => p.video.pause()));
  const cursor = h("div", { class: "cursor" });
  bar.append(cursor);
  bar.onclick = (ev) => {
    const r = bar.getBoundingClientRect();
    seekWall(lo + ((ev.clientX - r.left) / r.width) * (hi - lo));
  };
  const pos = (t) => `${Math.max(0, Math.min(100, ((t - lo) / (hi - lo)) * 100))}%`;
  const span = (a, b, cls, title) => {
    const el = h("div", { class: cls, title });
    el.style.left = pos(a);
    el.style.width = `calc(${pos(b)} - ${pos(a)})`;
    bar.append(el);
  };
  for (const p of players) {
    const qs = `start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`;
    api(`/api/v1/cameras/${p.cam.id}/segments?${qs}`).then((r) =>
      r.segments.forEach((s) => span(ms(s.start), ms(s.end), "seg", ""))).catch(() => {});
    api(`/api/v1/cameras/${p.cam.id}/gaps?${qs}`).then((r) =>
      r.gaps.forEach((g) => span(ms(g.start), ms(g.end), "gap", `${T("gaps")}: ${g.cause}`))).catch(() => {});
  }
  if (caseId) {
    api(`/api/v1/cases/${caseId}/events`).then((r) => {
      for (const e of r.events) {
        const t = ms(e.time);
        if (t < lo || t > hi) continue;
        const tick = h("div", { class: "ev", title: `${e.type} ${fmt(e.time)}` });
        tick.style.left = pos(t);
        bar.append(tick);
        const b = h("button", { class: "jump-event", "data-time": e.time }, `${T("jump")}: ${e.type} ${fmt(e.time)}`);
        b.onclick = () => seekWall(t);
        evList.append(b);
      }
    }).catch(() => {});
  }
  window.vauditSeek = seekWall; // for tests and power users: seek to a wall time in ms
  load(lo);
}

PAGE_STARTS.play = pagePlay;
