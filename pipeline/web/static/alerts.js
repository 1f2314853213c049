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
  const label = (a) => (LANG === "en" ? a.label.en : `${a.label["zh-CN"]} ${a.label.en}`);

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
    if (!r.ok) throw new Error((data.error && data.error.message) || r.statusText);
    return data;
  }

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
      `&start=${around(a.start, -20000)}&end=${around(a.end, 20000)}&t=${encodeURIComponent(a.start)}${a.case_id ? `&case=${a.case_id}` : ""}` }, "▶") : "");

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
      el("td", {}, label(a)), el("td", {}, T(a.severity)), el("td", { class: "alert-state" }, T(a.state)),
      el("td", {}, fmt(a.start), " ", playLink(a)), el("td", {}, a.end ? fmt(a.end) : T("ongoing")), el("td", {}, a.room_id || ""),
      el("td", {}, a.camera_id || ""), el("td", {}, a.message, a.note ? ` (${a.note})` : ""),
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
    } catch (err) { window.alert(err.message); }
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
    try { await load({ state: "active" }); } catch (err) { box.append(el("p", { class: "error" }, err.message)); }
    redraw();
    listeners.push(redraw);
    live();
  }

  // --- badges on the live page -------------------------------------------------------------------
  async function badges() {
    const draw = () => {
      const active = [...known.values()].filter((a) => a.state !== "resolved");
      document.querySelectorAll("[data-alerts-for]").forEach((span) => {
        const [kind, id] = span.dataset.alertsFor.split(/:(.*)/s);
        const mine = active.filter((a) => (kind === "room" ? a.room_id === id : a.camera_id === id));
        span.replaceChildren(...mine.map((a) =>
          el("a", { href: "/alerts", class: `alert-badge sev-${a.severity}`, title: a.message, "data-rule": a.rule }, label(a))));
      });
    };
    try {
      (await call("/api/v1/alerts?state=active&limit=500")).items.forEach((a) => known.set(a.id, a));
    } catch (_) { /* no badges */ }
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
