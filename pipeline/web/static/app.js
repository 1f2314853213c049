// video-audit supervisor web: every page is drawn here from the JSON API (same origin, session cookie).
// No framework, no CDN. zh-CN by default, English when the page says so (data-lang).
"use strict";

const root = document.getElementById("app");
const LANG = root.dataset.lang || "zh-CN";
const TZ = root.dataset.tz || "Asia/Shanghai";
const CSRF = root.dataset.csrf || "";

const TEXT = {
  "zh-CN": {
    case_number: "案件编号", subject: "涉案人员", officer: "民警编号", room: "房间", event_type: "事件类型",
    from: "开始时间", to: "结束时间", find: "检索", results: "检索结果", none: "无结果", title: "案件名称",
    charge: "案由", subjects: "人员", officers: "民警", trajectory: "轨迹", events: "事件", coverage: "录像覆盖",
    gaps: "录像中断", unexplained: "无说明缺失", export: "导出光盘", exports: "导出任务", state: "状态",
    progress: "进度", play: "回放", camera: "摄像机", seek: "跳转", jump: "跳到事件", any: "任意",
    live: "实时画面", occupants: "在场人员", alerts: "告警", nobody: "无人", latency: "延迟",
    user: "用户", action: "操作", object: "对象", time: "时间", client: "客户端", verify: "校验哈希链",
    older: "更早", chain_ok: "哈希链完整", chain_broken: "哈希链断裂于第", rows: "条", load: "加载",
    start: "开始", end: "结束", files: "文件", seconds: "秒", now: "当前",
    late: "补录", late_readings: "补录的位置记录", entered_by: "录入人", entered_at: "录入时间",
    play_stopped: "播放中断：录像文件可能与采集时的哈希不符，详见告警", anchors: "个锚点一致", unanchored: "条尚未锚定",
  },
  en: {
    case_number: "Case number", subject: "Subject", officer: "Officer id", room: "Room", event_type: "Event type",
    from: "From", to: "To", find: "Search", results: "Results", none: "No results", title: "Title",
    charge: "Charge", subjects: "Subjects", officers: "Officers", trajectory: "Trajectory", events: "Events",
    coverage: "Footage coverage", gaps: "Gaps", unexplained: "Unexplained", export: "Export disc",
    exports: "Export jobs", state: "State", progress: "Progress", play: "Play", camera: "Camera", seek: "Seek",
    jump: "Jump to event", any: "any", live: "Live", occupants: "In the room", alerts: "Alerts", nobody: "nobody",
    latency: "latency", user: "User", action: "Action", object: "Object", time: "Time", client: "Client",
    verify: "Verify hash chain", older: "Older", chain_ok: "Chain intact", chain_broken: "Chain broken at row",
    rows: "rows", load: "Load", start: "Start", end: "End", files: "Files", seconds: "s", now: "now",
    late: "late entry", late_readings: "Late location readings", entered_by: "Entered by", entered_at: "Entered at",
    play_stopped: "Playback stopped: the footage may no longer match its capture hash; see the alerts",
    anchors: "anchor(s) agree", unanchored: "row(s) not anchored yet",
  },
};
const T = (k) => (TEXT[LANG] && TEXT[LANG][k]) || k;

const EVENT_TYPES = [
  "arrest", "entry", "search", "property", "info_collection", "waiting", "taken_out", "returned",
  "interrogation_start", "interrogation_end", "transcript_signed", "exit", "other",
];

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick" || k === "onsubmit" || k === "onchange") el[k] = v;
    else if (v !== null && v !== undefined) el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, opts = {}) {
  const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = CSRF;
  }
  const resp = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    credentials: "same-origin",
  });
  if (resp.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("unauthorized");
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error((data.error && data.error.message) || resp.statusText);
  return data;
}

const fmtDate = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
  timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const fmt = (iso) => (iso ? fmtDate.format(new Date(iso)) : "—");
const ms = (iso) => new Date(iso).getTime();
const isoOf = (t) => new Date(t).toISOString();

function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, String(err.message || err));
}

// --- search ------------------------------------------------------------------------------------

function pageSearch() {
  const field = (name, label, type = "text") =>
    h("label", {}, label, " ", h("input", { name, type, id: "q-" + name }));
  const select = h("select", { name: "event_type", id: "q-event_type" },
    h("option", { value: "" }, T("any")), EVENT_TYPES.map((e) => h("option", { value: e }, e)));
  const out = h("div", { id: "results" });
  const form = h("form", { id: "search-form", class: "search" },
    field("case_number", T("case_number")), field("subject_name", T("subject")),
    field("officer_id", T("officer"), "number"), field("room_id", T("room")),
    h("label", {}, T("event_type"), " ", select),
    field("start", T("from"), "datetime-local"), field("end", T("to"), "datetime-local"),
    h("button", { type: "submit" }, T("find")));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      q.set(k, k === "start" || k === "end" ? isoOf(v) : v);
    }
    out.replaceChildren(T("find") + "…");
    try {
      const res = await api("/api/v1/cases?" + q.toString());
      if (!res.items.length) { out.replaceChildren(h("p", {}, T("none"))); return; }
      out.replaceChildren(h("h2", {}, `${T("results")} (${res.total})`), h("table", { class: "results" },
        h("tr", {}, h("th", {}, T("case_number")), h("th", {}, T("title")), h("th", {}, T("charge")),
          h("th", {}, T("subjects"))),
        res.items.map((c) => h("tr", {},
          h("td", {}, h("a", { href: `/cases/${c.id}`, class: "case-link" }, c.case_number)),
          h("td", {}, c.title), h("td", {}, c.charge),
          h("td", {}, c.subjects.map((s) => `${s.name} (${s.role})`).join(", "))))));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  root.append(form, out);
}

// --- case --------------------------------------------------------------------------------------

function lane(stays, events, lo, hi, width) {
  const x = (t) => Math.max(0, Math.min(width, ((t - lo) / Math.max(hi - lo, 1)) * width));
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", 46); svg.setAttribute("class", "lane");
  const add = (tag, attrs, title) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (title) { const t = document.createElementNS(NS, "title"); t.textContent = title; el.append(t); }
    svg.append(el);
    return el;
  };
  for (const st of stays) {
    const a = ms(st.interval.start), b = ms(st.interval.end);
    add("rect", { x: x(a), y: 4, width: Math.max(1, x(b) - x(a)), height: 22,
      class: st.unexplained_seconds > 0 ? "stay holes" : "stay" },
      `${st.stay.room_id} ${fmt(st.interval.start)} – ${fmt(st.interval.end)}`);
    const label = add("text", { x: x(a) + 3, y: 19, class: "stay-label" });
    label.textContent = st.stay.room_id;
    for (const cam of st.cameras) {
      for (const g of cam.gaps) {
        add("rect", { x: x(ms(g.start)), y: 27, width: Math.max(2, x(ms(g.end)) - x(ms(g.start))), height: 6,
          class: "gap" }, `${T("gaps")}: ${cam.camera_id} ${g.cause} ${fmt(g.start)}–${fmt(g.end)}`);
      }
      for (const u of cam.unexplained) {
        add("rect", { x: x(ms(u.start)), y: 27, width: Math.max(2, x(ms(u.end)) - x(ms(u.start))), height: 6,
          class: "unexplained" }, `${T("unexplained")}: ${cam.camera_id} ${fmt(u.start)}–${fmt(u.end)}`);
      }
    }
  }
  for (const e of events) {
    add("rect", { x: x(ms(e.time)) - 1, y: 34, width: 2, height: 10, class: "event" }, `${e.type} ${fmt(e.time)}`);
  }
  return svg;
}

async function pageCase() {
  const id = root.dataset.caseId;
  let info, tl;
  try {
    [info, tl] = await Promise.all([api(`/api/v1/cases/${id}`), api(`/api/v1/cases/${id}/timeline`)]);
  } catch (err) { root.append(errorBox(err)); return; }
  root.querySelector("h1").textContent = `${info.case_number} ${info.title}`;
  root.append(h("p", {}, `${T("charge")}: ${info.charge}`),
    h("p", {}, `${T("officers")}: `, info.officers.map((o) => `${o.name} (${o.badge_number}${o.role ? ", " + o.role : ""})`).join("; ")));
  const jobsBox = h("div", { id: "exports" });
  for (const sj of tl.subjects) {
    const s = sj.subject;
    const evs = tl.events.filter((e) => e.subject_id === s.id || e.subject_id === null);
    const times = sj.stays.flatMap((st) => [ms(st.interval.start), ms(st.interval.end)]).concat(evs.map((e) => ms(e.time)));
    const lo = Math.min(...times), hi = Math.max(...times);
    const exportBtn = h("button", { class: "export", "data-subject": s.id }, T("export"));
    exportBtn.onclick = async () => {
      exportBtn.disabled = true;
      try { await api("/api/v1/exports", { method: "POST", body: { case: info.case_number, subject: String(s.id) } }); }
      catch (err) { jobsBox.prepend(errorBox(err)); }
      exportBtn.disabled = false;
      refreshJobs();
    };
    const rows = sj.stays.map((st) => {
      const cams = st.cameras.map((c) => `${c.camera_id}: ${c.footage_seconds.toFixed(0)}${T("seconds")}` +
        (c.gaps.length ? `, ${T("gaps")} ${c.gaps.map((g) => g.cause).join("/")}` : "") +
        (c.unexplained_seconds ? `, ${T("unexplained")} ${c.unexplained_seconds.toFixed(0)}${T("seconds")}` : ""));
      const play = `/play?room=${encodeURIComponent(st.stay.room_id)}&start=${encodeURIComponent(st.interval.start)}` +
        `&end=${encodeURIComponent(st.interval.end)}&case=${id}`;
      return h("tr", {}, h("td", {}, st.stay.room_id), h("td", {}, fmt(st.interval.start)),
        h("td", {}, fmt(st.interval.end)), h("td", {}, cams.join("; ")),
        h("td", {}, st.cameras.length ? h("a", { href: play, class: "play-link" }, T("play")) : ""));
    });
    const late = (sj.late_readings || []).length ? [h("h3", {}, T("late_readings")), h("table", { class: "late-readings" },
      h("tr", {}, h("th", {}, T("time")), h("th", {}, T("room")), h("th", {}, T("entered_by")), h("th", {}, T("entered_at"))),
      sj.late_readings.map((o) => h("tr", { class: "late" }, h("td", {}, fmt(o.time)), h("td", {}, o.room_id),
        h("td", {}, o.entered_by || ""), h("td", {}, o.entered_at ? fmt(o.entered_at) : ""))))] : [];
    root.append(h("section", { class: "subject" },
      h("h2", {}, `${s.name} (${s.role}${s.id_number ? ", " + s.id_number : ""})`, " ", exportBtn),
      h("h3", {}, T("trajectory")), lane(sj.stays, evs, lo, hi, 900),
      h("table", {}, h("tr", {}, h("th", {}, T("room")), h("th", {}, T("start")), h("th", {}, T("end")),
        h("th", {}, T("coverage")), h("th", {}, "")), rows), late));
  }
  // A late entry says who entered it and when: the record was made after the fact.
  root.append(h("h2", {}, T("events")), h("table", { class: "events" }, tl.events.map((e) =>
    h("tr", { class: e.late ? "late" : null }, h("td", {}, fmt(e.time)), h("td", {}, e.type), h("td", {}, e.room_id || ""),
      h("td", { class: "late-mark" }, e.late ? `${T("late")}: ${e.entered_by || ""} ${e.entered_at ? fmt(e.entered_at) : ""}` : "")))));
  root.append(h("h2", {}, T("exports")), jobsBox);
  async function refreshJobs() {
    try {
      const res = await api("/api/v1/exports");
      const mine = res.exports.filter((j) => j.case === info.case_number || j.case === String(info.id));
      jobsBox.replaceChildren(h("table", {}, mine.map((j) => h("tr", { class: "job", "data-state": j.state },
        h("td", {}, j.id), h("td", {}, j.subject), h("td", { class: "job-state" }, j.state),
        h("td", {}, h("progress", { max: 1, value: j.progress }), ` ${(j.progress * 100).toFixed(0)}% ${j.message}`),
        h("td", {}, (j.files || []).map((f) => h("a", { href: `/api/v1/exports/${j.id}/files/${encodeURIComponent(f)}` }, f + " ")))))));
      if (mine.some((j) => j.state === "queued" || j.state === "running")) setTimeout(refreshJobs, 1000);
    } catch (err) { jobsBox.replaceChildren(errorBox(err)); }
  }
  refreshJobs();
}

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

// --- live ----------------------------------------------------------------------------------------

// The live page lives in /static/live.js (video over WebSocket + MSE, stills fallback, the alert
// badges' place); it uses the helpers above (top-level names of classic scripts are shared).
function pageLive() {
  const s = document.createElement("script");
  s.src = "/static/live.js";
  document.body.append(s);
}

// --- audit ---------------------------------------------------------------------------------------

function pageAudit() {
  const form = h("form", { id: "audit-form" },
    h("label", {}, T("user"), " ", h("input", { name: "user" })),
    h("label", {}, T("action"), " ", h("input", { name: "action" })),
    h("label", {}, T("object"), " ", h("input", { name: "object" })),
    h("button", { type: "submit" }, T("load")));
  const verify = h("button", { id: "verify" }, T("verify"));
  const status = h("span", { id: "verify-result" });
  const table = h("table", { id: "audit-rows" });
  const more = h("button", { id: "older" }, T("older"));
  let before = null;
  async function load(reset) {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) q.set(k, v);
    if (!reset && before !== null) q.set("before", before);
    try {
      const rows = (await api("/api/v1/audit?" + q.toString())).rows;
      if (reset) table.replaceChildren(h("tr", {}, ["#", T("time"), T("user"), T("action"), T("object"), T("client"), "hash"].map((x) => h("th", {}, x))));
      for (const r of rows) {
        table.append(h("tr", { class: "audit-row" }, h("td", {}, r.seq), h("td", {}, fmt(isoOf(r.time_us / 1000))),
          h("td", {}, r.user), h("td", {}, r.action), h("td", {}, r.object), h("td", {}, r.client_addr || ""),
          h("td", { class: "hash", title: r.hash }, r.hash.slice(0, 12))));
      }
      if (rows.length) before = rows[rows.length - 1].seq;
    } catch (err) { table.replaceChildren(errorBox(err)); }
  }
  form.onsubmit = (ev) => { ev.preventDefault(); before = null; load(true); };
  more.onclick = () => load(false);
  verify.onclick = async () => {
    const r = await api("/api/v1/audit/verify");
    const problems = (r.anchor_problems || []).join("; ");
    status.textContent = r.ok
      ? `${T("chain_ok")} (${r.rows} ${T("rows")}; ${r.anchors} ${T("anchors")}, ${r.unanchored_rows} ${T("unanchored")})`
      : `${T("chain_broken")} ${r.first_broken || ""}: ${r.reason || ""} ${problems}`;
  };
  root.append(form, h("p", {}, verify, " ", status), table, more);
  load(true);
}

const PAGES = { search: pageSearch, case: pageCase, play: pagePlay, live: pageLive, audit: pageAudit };
(PAGES[root.dataset.page] || (() => {}))();
// Risk alerts (alerts.js): the live page's badges, the case page's alerts beside its timeline.
document.body.append(Object.assign(document.createElement("script"), { src: "/static/alerts.js" }));
