// video-audit supervisor web: the timeline under the player (play.js loads it). A time axis that zooms
// from a minute to the whole stay; the rooms the subject passed through; one row per camera with its
// footage and its gaps (causes named); events and alerts as labelled marks; a playhead, the time
// under the mouse, and a legend. A click anywhere seeks there; an alert's mark plays from its start.
"use strict";

const TIMELINE_TEXT = {
  "zh-CN": { rooms: "房间", marks: "事件/告警", footage: "录像", gap: "录像中断", event: "事件", alert: "告警",
    playhead: "播放位置", zoom_in: "放大", zoom_out: "缩小", whole: "全程", no_rec: "无录像" },
  en: { rooms: "Rooms", marks: "Events/alerts", footage: "Footage", gap: "Gap", event: "Event", alert: "Alert",
    playhead: "Playhead", zoom_in: "Zoom in", zoom_out: "Zoom out", whole: "Whole stay", no_rec: "No recording" },
};
const TT = (k) => (TIMELINE_TEXT[LANG] || TIMELINE_TEXT["zh-CN"])[k] || k;
const MIN_SPAN_MS = 60000;
const TICKS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
const fmtClock = new Intl.DateTimeFormat(LANG === "en" ? "en-GB" : "zh-CN", {
  timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

class Timeline {
  // rows: [{key, title}]; stays: [{start, end, title}] (ms); events: [{time, type, title}]; onSeek(t ms)
  constructor({ lo, hi, rows, stays = [], onSeek }) {
    this.lo = lo; this.hi = hi; this.vlo = lo; this.vhi = hi; this.t = lo;
    this.onSeek = onSeek;
    this.rows = rows.map((r) => ({ ...r, segs: [], gaps: [] }));
    this.stays = stays; this.events = []; this.alerts = [];
    this.labels = h("div", { class: "tl-labels" });
    this.track = h("div", { class: "tl-tracks", id: "scrubber" });
    this.hover = h("div", { class: "tl-hover", hidden: "" });
    const zoom = (f) => () => this.zoomAt(this.t, f);
    const btn = (cls, text, fn) => { const b = h("button", { type: "button", class: cls }, text); b.onclick = fn; return b; };
    this.span = h("span", { class: "tl-span" });
    const legend = h("div", { class: "tl-legend" },
      [["seg", TT("footage")], ["gap", TT("gap")], ["none", TT("no_rec")], ["ev", TT("event")], ["alert-mark", TT("alert")], ["cursor", TT("playhead")]]
        .map(([cls, text]) => h("span", {}, h("i", { class: `key ${cls}` }), text)));
    this.el = h("div", { class: "timeline" },
      h("div", { class: "tl-bar" }, btn("zoom-in", TT("zoom_in"), zoom(0.5)), btn("zoom-out", TT("zoom_out"), zoom(2)),
        btn("zoom-all", TT("whole"), () => { this.vlo = this.lo; this.vhi = this.hi; this.draw(); }), this.span, legend),
      h("div", { class: "tl-body" }, this.labels, this.track));
    this.track.addEventListener("click", (ev) => {
      if (ev.target.closest(".alert-mark")) return;
      this.onSeek(this.timeAt(ev.clientX));
    });
    this.track.addEventListener("mousemove", (ev) => {
      const t = this.timeAt(ev.clientX);
      this.hover.hidden = false;
      this.hover.textContent = fmt(isoOf(t));
      this.hover.style.left = this.x(t);
    });
    this.track.addEventListener("mouseleave", () => { this.hover.hidden = true; });
    this.track.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      this.zoomAt(this.timeAt(ev.clientX), ev.deltaY < 0 ? 0.8 : 1.25);
    }, { passive: false });
    this.draw();
  }
  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    return this.vlo + Math.max(0, Math.min(1, (clientX - r.left) / r.width)) * (this.vhi - this.vlo);
  }
  x(t) { return `${((t - this.vlo) / (this.vhi - this.vlo)) * 100}%`; }
  zoomAt(t, f) {
    // never wider than the whole range: a stay shorter than the closest zoom stays as it is
    const whole = this.hi - this.lo;
    const span = Math.min(whole, Math.max(Math.min(MIN_SPAN_MS, whole), (this.vhi - this.vlo) * f));
    const c = (t - this.vlo) / (this.vhi - this.vlo);
    this.vlo = Math.max(this.lo, Math.min(this.hi - span, t - c * span));
    this.vhi = this.vlo + span;
    this.draw();
  }
  setFootage(key, segs, gaps) {
    const row = this.rows.find((r) => r.key === key);
    if (row) { row.segs = segs; row.gaps = gaps; this.draw(); }
  }
  setMarks(events, alerts) { this.events = events; this.alerts = alerts; this.draw(); }
  setTime(t) {
    this.t = t;
    if (t < this.vlo || t > this.vhi) { // follow the playhead out of a zoomed view
      const span = this.vhi - this.vlo;
      this.vlo = Math.max(this.lo, Math.min(this.hi - span, t - span * 0.1));
      this.vhi = this.vlo + span;
      this.draw();
    }
    this.cursor.style.left = this.x(t);
  }
  // one bar from a to b on a row; null when it is out of view
  bar(row, a, b, cls, title, text) {
    if (b < this.vlo || a > this.vhi) return null;
    const lo = Math.max(a, this.vlo), hi = Math.min(b, this.vhi);
    const el = h("div", { class: cls, title }, text || "");
    el.style.left = this.x(lo);
    el.style.width = `calc(${this.x(hi)} - ${this.x(lo)})`;
    row.append(el);
    return el;
  }
  draw() {
    const span = this.vhi - this.vlo;
    this.span.textContent = `${fmt(isoOf(this.vlo))} – ${fmtClock.format(new Date(this.vhi))}`;
    this.labels.replaceChildren(h("div", { class: "tl-label axis" }, ""));
    this.track.replaceChildren();
    const axis = h("div", { class: "tl-row axis" });
    const step = (TICKS_S.find((s) => (span / 1000) / s <= 10) || 86400) * 1000;
    for (let t = Math.ceil(this.vlo / step) * step; t <= this.vhi; t += step) {
      const tick = h("span", { class: "tick" }, fmtClock.format(new Date(t)));
      tick.style.left = this.x(t);
      axis.append(tick);
    }
    this.track.append(axis);
    const row = (cls, title) => {
      this.labels.append(h("div", { class: `tl-label ${cls}`, title }, title));
      const r = h("div", { class: `tl-row ${cls}` });
      this.track.append(r);
      return r;
    };
    if (this.stays.length) {
      const r = row("stays", TT("rooms"));
      for (const s of this.stays) this.bar(r, s.start, s.end, "stay", `${s.title} ${fmt(isoOf(s.start))} – ${fmt(isoOf(s.end))}`, s.title);
    }
    for (const cam of this.rows) {
      const r = row("camera", cam.title);
      r.dataset.camera = cam.key;
      for (const [a, b] of cam.segs) this.bar(r, a, b, "seg", `${TT("footage")} ${fmt(isoOf(a))} – ${fmt(isoOf(b))}`);
      for (const g of cam.gaps) {
        const text = gapText(g);
        this.bar(r, ms(g.start), ms(g.end), "gap", `${text} ${fmt(g.start)} – ${fmt(g.end)}${g.detail ? " " + g.detail : ""}`, text);
      }
    }
    const marks = row("marks", TT("marks"));
    for (const e of this.events) {
      const m = this.bar(marks, e.time, e.time, "ev", `${e.title} ${fmt(isoOf(e.time))}`, e.title);
      if (m) m.style.width = "";
    }
    for (const a of this.alerts) {
      const m = this.bar(marks, a.start, a.end || a.start, `alert-mark sev-${a.severity}`, `${a.title} ${fmt(isoOf(a.start))}`, a.title);
      if (!m) continue;
      m.dataset.alert = String(a.id);
      m.onclick = () => this.onSeek(a.start);
    }
    this.cursor = h("div", { class: "cursor", title: TT("playhead") });
    this.cursor.style.left = this.x(this.t);
    this.track.append(this.cursor, this.hover);
  }
}
