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
    badge: "民警警号", id_number: "身份证号", in_area: "在区", pending: "录制中", hash: "哈希", replay: "全程回放",
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
    badge: "Badge number", id_number: "ID number", in_area: "still inside", pending: "recording", hash: "hash", replay: "Full-stay replay",
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
  if (!resp.ok) {
    // the API's error shape (pipeline/api/errors.py): errorBox shows the code's name, the English
    // message stays in the error for the title
    const e = data.error || {};
    throw Object.assign(new Error(e.message || resp.statusText), { code: e.code || "unknown", status: resp.status, details: e.details });
  }
  return data;
}

const fmtDate = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
  timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});
const fmt = (iso) => (iso ? fmtDate.format(new Date(iso)) : "—");
const ms = (iso) => new Date(iso).getTime();
const isoOf = (t) => new Date(t).toISOString();

// Typed times are the centre's wall time (TZ), whatever zone the browser is set to: a supervisor
// types what the clock and the subtitles show. zoned(t) is what to show or prefill ("T" between date
// and time for a datetime-local input); unzoned(text) reads it back (epoch ms, or null).
const zoneParts = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit",
  day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
function zoned(t, sep = " ") { // epoch ms → "YYYY-MM-DD HH:MM:SS" in the centre's zone
  const p = Object.fromEntries(zoneParts.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}${sep}${p.hour}:${p.minute}:${p.second}`;
}
function unzoned(text) { // "YYYY-MM-DD HH:MM[:SS[.fff]]" (space or T) in the centre's zone → epoch ms, or null
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*$/.exec(String(text || ""));
  if (!m) return null;
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) + Math.round(Number(m[7] || 0) * 1000);
  let t = wall;
  for (let i = 0; i < 3; i++) { // the zone's offset at that instant (again: across a DST change)
    const shown = zonedWall(zoned(t)) + (t % 1000 + 1000) % 1000;
    t += wall - shown;
  }
  return t;
}
function zonedWall(s) { // zoned()'s text read as if it were UTC
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s);
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

function errorBox(err) {
  const detail = String((err && err.message) || err);
  return h("p", { class: "error", role: "alert", title: detail, "data-code": (err && err.code) || "" }, errorText(err));
}

// Each page's script (search.js, case.js, play.js, audit.js, live.js) is loaded after this one and
// registers its start function here; the page starts once the document (and so every script) is ready.
const PAGE_STARTS = {};
document.addEventListener("DOMContentLoaded", () => {
  (PAGE_STARTS[root.dataset.page] || (() => {}))();
  // The language switch keeps the page where it is: the address as it is now (the play page
  // writes the moment shown into it), only its lang changed.
  for (const a of document.querySelectorAll('nav a[href^="?lang="]')) {
    a.addEventListener("click", () => {
      const q = new URLSearchParams(location.search);
      q.set("lang", new URLSearchParams(a.getAttribute("href").slice(1)).get("lang"));
      a.href = "?" + q.toString();
    });
  }
  // Risk alerts (alerts.js): the live page's badges, the case page's alerts beside its timeline.
  document.body.append(Object.assign(document.createElement("script"), { src: "/static/alerts.js" }));
});
