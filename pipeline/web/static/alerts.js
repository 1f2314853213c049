// Risk alerts in the supervisor web (docs/design/alerts.md), live through the SSE stream:
// - the alerts page (/alerts, <main id="alerts">): list, acknowledge/resolve buttons;
// - the live page: badges in the places live.js marks with data-alerts-for="room:<id>" / "camera:<id>";
// - the case page: the case's alerts beside its timeline.
// Loaded by app.js on every page; stands alone (no shared names needed).
"use strict";
(() => {
  const main = document.getElementById("alerts") || document.getElementById("app");
  if (!main) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/static/alerts.css" }));
  const LANG = main.dataset.lang || "zh-CN";
  const TZ = main.dataset.tz || "Asia/Shanghai";
  const CSRF = main.dataset.csrf || "";
  const TEXT = {
    "zh-CN": {
      alerts: "风险告警", rule: "类型", severity: "级别", state: "状态", start: "开始", end: "结束", room: "房间",
      camera: "摄像机", message: "说明", snapshot: "截图", acknowledge: "确认", resolve: "处置", note: "备注",
      open: "未处理", acknowledged: "已确认", resolved: "已处置", high: "高", medium: "中", low: "低",
      show_all: "显示已处置", none: "无告警", live: "实时更新", by: "处理人", ongoing: "持续中",
    },
    en: {
      alerts: "Risk alerts", rule: "Rule", severity: "Severity", state: "State", start: "Start", end: "End", room: "Room",
      camera: "Camera", message: "Message", snapshot: "Snapshot", acknowledge: "Acknowledge", resolve: "Resolve",
      note: "Note", open: "open", acknowledged: "acknowledged", resolved: "resolved", high: "high", medium: "medium",
      low: "low", show_all: "Show resolved", none: "No alerts", live: "live", by: "Handled by", ongoing: "ongoing",
    },
  };
  const T = (k) => (TEXT[LANG] && TEXT[LANG][k]) || k;
  const fmtDate = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });
  const fmt = (iso) => (iso ? fmtDate.format(new Date(iso)) : T("ongoing"));
  // the rule's name in the page's language (the API gives both; the other is the title)
  const ruleName = (a) => (LANG === "en" ? a.label.en : a.label["zh-CN"]);
  // Rooms and cameras by name (labels.js's places(), loaded before this script on every page).
  let P = { room: new Map(), camera: new Map() };
  const ready = typeof places === "function" ? places().then((p) => { P = p; }) : Promise.resolve();
  const roomOf = (id) => (id ? P.room.get(id) || id : "");
  const camOf = (id) => (id ? P.camera.get(id) || id : "");

  // The alert's message: pipeline/risk writes it in English (kept: the title of the Chinese text,
  // and the English page shows it); the Chinese text is made here from the alert's fields.
  const PICTURE = { black: "黑屏", frozen: "冻结", covered: "遮挡" };
  function message(a) {
    if (LANG === "en") return a.message;
    const d = a.details || {}, room = roomOf(a.room_id), cam = camOf(a.camera_id);
    const n = (xs) => (Array.isArray(xs) ? xs.length : 0);
    switch (a.rule) {
      case "unattended": return `涉案人员在${room}无民警看管`;
      case "co_suspects": return `同案犯罪嫌疑人${n(d.subject_ids)}人同处${room}`;
      case "time_limit_exceeded": return `羁押已超过${d.limit_hours}小时（时限 ${fmt(d.deadline)}）`;
      case "time_limit_approaching": return `将于${fmt(d.deadline)}达到${d.limit_hours}小时时限`;
      case "officers_short": return `${room}讯问时在场民警${n(d.officer_ids)}人，少于${d.min_officers}人`;
      case "minor_without_guardian": return `未成年人在${room}接受讯问时无监护人在场`;
      case "recording_lost":
        return `${cam}（${room}）${String(a.dedup_key).endsWith(":audio") ? "音频中断" : "录像中断"}，房间内有人`;
      case "picture_black": case "picture_frozen": case "picture_covered":
        return `${cam}画面${PICTURE[a.rule.slice(8)]}，${room}内有人`;
      case "camera_moved": return `${cam}位置移动`;
      case "camera_defocused": return `${cam}画面模糊`;
      case "headcount": return `${cam}画面中的人数少于${room}在场人数`;
      case "stay_exceeded": return "在办案区停留超过规定时长";
      case "missing_exit": return `自${fmt(a.start)}起未再出现，且未登记离区`;
      case "login_failures":
        return `连续${d.failures}次登录失败（${d.account !== undefined ? "账号 " + d.account : "地址 " + d.address}）`;
      case "footage_integrity": return `${cam}的录像文件与采集时的哈希不符`;
      default: return ruleName(a);
    }
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "onclick" || k === "onchange") e[k] = v;
      else if (v !== null && v !== undefined) e.setAttribute(k, v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  async function call(path, method = "GET", body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) Object.assign(headers, { "Content-Type": "application/json", "X-CSRF-Token": CSRF });
    const r = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error((data.error && data.error.message) || r.statusText), { code: (data.error || {}).code });
    return data;
  }

  // An API error in the page's words (labels.js's errorText), the English message as the fallback.
  const failed = (err) => (typeof errorText === "function" ? errorText(err) : err.message);

  // Live changes: one EventSource per page; each change replaces the alert in `known`.
  const known = new Map();
  const listeners = [];
  function live() {
    // Opened only after the page's load event: a stream opened earlier keeps the page "loading".
    if (document.readyState !== "complete") {
      window.addEventListener("load", live, { once: true });
      return;
    }
    let es;
    try { es = new EventSource("/api/v1/alerts/stream"); } catch (_) { return; }
    for (const kind of ["raised", "continued", "ended", "acknowledged", "resolved", "snapshot"]) {
      es.addEventListener(kind, (ev) => {
        const doc = JSON.parse(ev.data);
        known.set(doc.alert.id, doc.alert);
        listeners.forEach((f) => f(doc));
      });
    }
  }

  // One click from an alert to its footage (the play page, from the alert's start; play.js).
  const around = (iso, d) => encodeURIComponent(new Date((iso ? Date.parse(iso) : Date.now()) + d).toISOString());
  const playLink = (a) => (a.room_id || a.camera_id ? el("a", { class: "alert-play", title: "▶",
    href: `/play?${a.camera_id ? `camera=${encodeURIComponent(a.camera_id)}` : `room=${encodeURIComponent(a.room_id)}`}` +
      `&start=${around(a.start, -20000)}&end=${around(a.end, 20000)}&at=${encodeURIComponent(a.start)}${a.case_id ? `&case=${a.case_id}` : ""}` }, "▶") : "");

  function row(a, handler, redraw) {
    const buttons = [];
    if (handler && a.state === "open") {
      buttons.push(el("button", { class: "ack", "data-id": a.id, onclick: () => act(a, "acknowledge", redraw) }, T("acknowledge")));
    }
    if (handler && a.state !== "resolved") {
      buttons.push(el("button", { class: "resolve", "data-id": a.id, onclick: () => act(a, "resolve", redraw) }, T("resolve")));
    }
    const who = [a.acknowledged_by, a.resolved_by].filter(Boolean).join(" / ");
    return el("tr", { class: `alert sev-${a.severity}`, "data-id": a.id, "data-state": a.state, "data-rule": a.rule },
      el("td", { title: a.label.en }, ruleName(a)), el("td", {}, T(a.severity)), el("td", { class: "alert-state" }, T(a.state)),
      el("td", {}, fmt(a.start), " ", playLink(a)), el("td", {}, a.end ? fmt(a.end) : T("ongoing")), el("td", {}, roomOf(a.room_id)),
      el("td", {}, camOf(a.camera_id)), el("td", { class: "alert-message", title: a.message }, message(a), a.note ? ` (${a.note})` : ""),
      el("td", {}, a.snapshot ? el("a", { href: a.snapshot, target: "_blank" }, el("img", { src: a.snapshot, alt: T("snapshot"), class: "alert-snap" })) : ""),
      el("td", {}, who), el("td", {}, buttons));
  }

  async function act(a, action, redraw) {
    const note = window.prompt(`${T(action)}: ${T("note")}`, "");
    if (note === null) return;
    try {
      const updated = await call(`/api/v1/alerts/${a.id}/${action}`, "POST", note ? { note } : {});
      known.set(updated.id, updated);
      redraw();
    } catch (err) { window.alert(failed(err)); }
  }

  function table(list, handler, redraw) {
    const head = ["rule", "severity", "state", "start", "end", "room", "camera", "message", "snapshot", "by", ""];
    return el("table", { class: "alerts" }, el("tr", {}, head.map((k) => el("th", {}, k ? T(k) : ""))),
      list.length ? list.map((a) => row(a, handler, redraw)) : el("tr", {}, el("td", { colspan: head.length }, T("none"))));
  }

  // --- the alerts page ---------------------------------------------------------------------------
  async function alertsPage() {
    const handler = main.dataset.handler === "1";
    const all = el("input", { type: "checkbox", id: "show-all" });
    const box = el("div", { id: "alert-list" });
    main.append(el("label", {}, all, " ", T("show_all")), " ", el("span", { class: "live-dot" }, T("live")), box);
    const redraw = () => {
      const list = [...known.values()].filter((a) => all.checked || a.state !== "resolved").sort((x, y) => y.id - x.id);
      box.replaceChildren(table(list, handler, redraw));
    };
    all.onchange = async () => { await load(all.checked ? {} : { state: "active" }); redraw(); };
    async function load(q) {
      const res = await call("/api/v1/alerts?" + new URLSearchParams({ limit: "500", ...q }));
      res.items.forEach((a) => known.set(a.id, a));
    }
    try { await load({ state: "active" }); } catch (err) { box.append(el("p", { class: "error", title: err.message }, failed(err))); }
    await ready;
    redraw();
    listeners.push(redraw);
    live();
  }

  // --- badges on the live page -------------------------------------------------------------------
  async function badges() {
    const draw = () => {
      // A badge says what holds now: an alert whose condition ended (the camera records again)
      // leaves the tile, though it stays on the alerts page until someone handles it.
      const active = [...known.values()].filter((a) => a.state !== "resolved" && !a.end);
      document.querySelectorAll("[data-alerts-for]").forEach((span) => {
        const [kind, id] = span.dataset.alertsFor.split(/:(.*)/s);
        const mine = active.filter((a) => (kind === "room" ? a.room_id === id : a.camera_id === id));
        span.replaceChildren(...mine.map((a) =>
          el("a", { href: "/alerts", class: `alert-badge sev-${a.severity}`, title: message(a), "data-rule": a.rule }, ruleName(a))));
      });
    };
    try {
      (await call("/api/v1/alerts?state=active&limit=500")).items.forEach((a) => known.set(a.id, a));
    } catch (_) { /* no badges */ }
    await ready;
    draw();
    let spans = 0;  // the grid draws later: draw again when badge places appear (not on our own changes)
    new MutationObserver(() => {
      const n = document.querySelectorAll("[data-alerts-for]").length;
      if (n !== spans) { spans = n; draw(); }
    }).observe(main, { childList: true, subtree: true });
    listeners.push(draw);
    live();
  }

  // --- the case page: the case's alerts beside its timeline ---------------------------------------
  async function casePage() {
    let res;
    try { res = await call(`/api/v1/alerts?case_id=${encodeURIComponent(main.dataset.caseId)}&limit=500`); } catch (_) { return; }
    const handler = ["supervisor", "legal", "admin"].includes(main.dataset.role);
    const section = el("section", { id: "case-alerts" }, el("h2", {}, T("alerts")));
    await ready;
    const redraw = () => {
      const list = res.items.map((a) => known.get(a.id) || a).sort((x, y) => (x.start < y.start ? -1 : 1));
      section.replaceChildren(el("h2", {}, T("alerts")), table(list, handler, redraw));
    };
    redraw();
    // after the timeline (pageCase draws asynchronously): before the export jobs if they are there
    const place = () => {
      const jobs = document.getElementById("exports");
      if (jobs && jobs.previousElementSibling) main.insertBefore(section, jobs.previousElementSibling);
      else main.append(section);
    };
    if (document.getElementById("exports")) place();
    else {
      const obs = new MutationObserver(() => { if (document.getElementById("exports")) { obs.disconnect(); place(); } });
      obs.observe(main, { childList: true });
      setTimeout(() => { obs.disconnect(); if (!section.isConnected) place(); }, 5000);
    }
  }

  if (main.id === "alerts") alertsPage();
  else if (main.dataset.page === "live") badges();
  else if (main.dataset.page === "case") casePage();
})();
